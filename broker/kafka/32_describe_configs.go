package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
)

var errUnknownResource = errors.New("unsupported config resource")

// handleDescribeConfigs reports topic configs (every config sluice knows,
// with its effective value) and a few read-only broker settings.
func handleDescribeConfigs(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	resp.Resources = make([]kmsg.DescribeConfigsResponseResource, 0, len(req.Resources))
	for i := range req.Resources {
		rr := &req.Resources[i]
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName

		var entries []broker.ConfigEntry
		var source kmsg.ConfigSource
		var err error
		switch {
		case rr.ResourceType == kmsg.ConfigResourceTypeTopic && cx.s.cluster != nil:
			// Any node answers from the cluster metadata, whether it
			// holds a replica of the topic or not.
			t, ok := cx.s.cluster.Topic(rr.ResourceName)
			if !ok {
				err = fmt.Errorf("%w: %s", broker.ErrUnknownTopic, rr.ResourceName)
				break
			}
			entries, err = cx.s.b.DescribeTopicConfigs(t.Info.Configs)
		case rr.ResourceType == kmsg.ConfigResourceTypeTopic:
			entries, err = cx.s.b.DescribeConfigs(rr.ResourceName)
		case rr.ResourceType == kmsg.ConfigResourceTypeBroker:
			entries, err = cx.brokerConfigs(rr.ResourceName)
			source = kmsg.ConfigSourceStaticBrokerConfig
		default:
			err = fmt.Errorf("%w: type %d", errUnknownResource, rr.ResourceType)
		}
		if err != nil {
			sr.ErrorCode = cx.code(err)
			sr.ErrorMessage = errMessage(err)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.Name) {
				continue
			}
			sr.Configs = append(sr.Configs, describedConfig(e, source, req.IncludeSynonyms))
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// brokerConfigs describes this node. As in Kafka, an empty name asks for
// dynamic broker configs, of which sluice has none.
func (cx *reqCtx) brokerConfigs(name string) ([]broker.ConfigEntry, error) {
	node := strconv.Itoa(int(cx.s.b.NodeID()))
	switch name {
	case "":
		return nil, nil
	case node:
	default:
		return nil, fmt.Errorf("%w: broker %q is not this node (%s)", errInvalidRequest, name, node)
	}
	return []broker.ConfigEntry{
		{Name: "broker.id", Value: node, ReadOnly: true},
		{Name: "log.dirs", Value: cx.s.b.DataDir(), ReadOnly: true},
		{Name: "socket.request.max.bytes", Value: strconv.Itoa(int(cx.s.cfg.MaxRequestSize)), ReadOnly: true},
	}, nil
}

// describedConfig converts one entry; source 0 means "derive from the
// entry" (topic configs: default or set on the topic).
func describedConfig(e broker.ConfigEntry, source kmsg.ConfigSource, synonyms bool) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name = e.Name
	v := e.Value
	c.Value = &v
	c.ReadOnly = e.ReadOnly
	c.IsDefault = e.IsDefault
	if source == 0 {
		source = configSource(e)
	}
	c.Source = source
	c.ConfigType = configType(e.Name)
	if synonyms {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Value, s.Source = e.Name, &v, source
		c.ConfigSynonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{s}
	}
	return c
}

func configSource(e broker.ConfigEntry) kmsg.ConfigSource {
	if e.IsDefault {
		return kmsg.ConfigSourceDefaultConfig
	}
	return kmsg.ConfigSourceDynamicTopicConfig
}

// configType follows Kafka's types for the config names sluice knows.
func configType(name string) kmsg.ConfigType {
	switch {
	case name == "cleanup.policy":
		return kmsg.ConfigTypeList
	case name == "min.insync.replicas", name == "index.interval.bytes":
		return kmsg.ConfigTypeInt
	case strings.HasSuffix(name, ".ms"), strings.HasSuffix(name, ".bytes"):
		return kmsg.ConfigTypeLong
	}
	return kmsg.ConfigTypeString
}
