package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// adminTimeout bounds each topic command, so an unreachable broker is an
// error rather than a hang.
const adminTimeout = 30 * time.Second

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, delete, list and describe topics",
	}
	addBrokersFlag(cmd)
	cmd.AddCommand(newTopicCreateCmd(), newTopicDeleteCmd(), newTopicListCmd(), newTopicDescribeCmd())
	return cmd
}

func newTopicCreateCmd() *cobra.Command {
	var (
		partitions  int32
		replication int16
		retention   string
		configs     []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Example: `  sluice topic create orders --partitions 6 --retention 7d
  sluice topic create users --config cleanup.policy=compact --config segment.bytes=104857600`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := topicConfigs(configs, retention, cmd.Flags().Changed("retention"))
			if err != nil {
				return usageError{err}
			}
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				resp, err := adm.CreateTopic(ctx, partitions, replication, cfg, args[0])
				if err != nil {
					return fmt.Errorf("create topic %s: %w", args[0], withMessage(err, resp.ErrMessage))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created topic %s with %d partitions\n", args[0], partitions)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int32Var(&partitions, "partitions", 1, "number of partitions")
	f.Int16Var(&replication, "replication-factor", -1, "replicas per partition; -1 is the cluster's default (1 on a single node, up to 3 in a cluster)")
	f.StringVar(&retention, "retention", "", `how long records are kept (retention.ms): a Go duration or days, e.g. 7d, 36h, 1d12h; -1 keeps forever`)
	f.StringArrayVar(&configs, "config", nil, "topic config KEY=VALUE, e.g. cleanup.policy=compact (repeatable)")
	return cmd
}

// topicConfigs turns --config and --retention into a CreateTopics config
// map, refusing duplicates so that the effective value is never a guess.
func topicConfigs(kvs []string, retention string, retentionSet bool) (map[string]*string, error) {
	out := make(map[string]*string, len(kvs)+1)
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q: want KEY=VALUE", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--config %s given twice", k)
		}
		out[k] = kadm.StringPtr(v)
	}
	if retentionSet {
		if _, dup := out["retention.ms"]; dup {
			return nil, fmt.Errorf("--retention and --config retention.ms both given")
		}
		d, err := parseRetention(retention)
		if err != nil {
			return nil, fmt.Errorf("--retention: %w", err)
		}
		ms := int64(-1)
		if d > 0 {
			ms = d.Milliseconds()
		}
		out["retention.ms"] = kadm.StringPtr(strconv.FormatInt(ms, 10))
	}
	return out, nil
}

func newTopicDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and its data",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				resp, err := adm.DeleteTopic(ctx, args[0])
				if err == nil {
					err = resp.Err
				}
				if err != nil {
					return fmt.Errorf("delete topic %s: %w", args[0], withMessage(err, resp.ErrMessage))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", args[0])
				return nil
			})
		},
	}
}

func newTopicListCmd() *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics, one per line with the partition count",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				list := adm.ListTopics
				if internal {
					list = adm.ListTopicsWithInternal
				}
				topics, err := list(ctx)
				if err != nil {
					return fmt.Errorf("list topics: %w", err)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, t := range topics.Sorted() {
					fmt.Fprintf(tw, "%s\t%d\n", t.Topic, len(t.Partitions))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&internal, "internal", false, "include internal topics (names starting with __)")
	return cmd
}

func newTopicDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions (leader, replicas, log start and end offsets) and configs",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return describeTopic(ctx, cmd.OutOrStdout(), adm, args[0])
			})
		},
	}
}

func describeTopic(ctx context.Context, w io.Writer, adm *kadm.Client, name string) error {
	topics, err := adm.ListTopicsWithInternal(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", name, err)
	}
	t, ok := topics[name]
	if !ok {
		return fmt.Errorf("describe topic %s: not in the broker's metadata", name)
	}
	if t.Err != nil {
		return fmt.Errorf("describe topic %s: %w", name, t.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %s: log start offsets: %w", name, err)
	}
	ends, err := adm.ListEndOffsets(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %s: log end offsets: %w", name, err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %s: configs: %w", name, err)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Topic:\t%s\n", name)
	if t.ID != (kadm.TopicID{}) {
		fmt.Fprintf(tw, "ID:\t%s\n", t.ID)
	}
	fmt.Fprintf(tw, "Partitions:\t%d\n", len(t.Partitions))
	if t.IsInternal {
		fmt.Fprintf(tw, "Internal:\ttrue\n")
	}
	fmt.Fprintln(tw)
	// The end offset a client can read to is the high watermark: with
	// replication, records not yet on every in-sync replica are not in it.
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tLOG-START\tHIGH-WATERMARK")
	for _, p := range t.Partitions.Sorted() {
		leader := strconv.Itoa(int(p.Leader))
		if p.Leader < 0 {
			leader = "none"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", p.Partition, leader, p.LeaderEpoch, ids(p.Replicas), ids(p.ISR),
			offsetCell(starts, name, p.Partition), offsetCell(ends, name, p.Partition))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CONFIG\tVALUE\tSOURCE")
	for _, rc := range configs {
		if rc.Err != nil {
			fmt.Fprintf(tw, "(error)\t%v\t\n", withMessage(rc.Err, rc.ErrMessage))
			continue
		}
		cs := append([]kadm.Config(nil), rc.Configs...)
		sort.Slice(cs, func(i, j int) bool { return cs[i].Key < cs[j].Key })
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Key, c.MaybeValue(), configSource(c.Source))
		}
	}
	return tw.Flush()
}

func ids(v []int32) string {
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

func offsetCell(l kadm.ListedOffsets, topic string, p int32) string {
	o, ok := l.Lookup(topic, p)
	switch {
	case !ok:
		return "?"
	case o.Err != nil:
		return o.Err.Error()
	}
	return strconv.FormatInt(o.Offset, 10)
}

// configSource names where a config's value comes from in the words an
// operator uses: set on the topic, or the default.
func configSource(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic"
	case kmsg.ConfigSourceDefaultConfig, kmsg.ConfigSourceStaticBrokerConfig:
		return "default"
	case kmsg.ConfigSourceDynamicBrokerConfig, kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "broker"
	}
	return strings.ToLower(s.String())
}

// withMessage adds the broker's error message, which usually says which
// value was wrong, to a Kafka error code.
func withMessage(err error, msg string) error {
	if msg == "" || strings.Contains(err.Error(), msg) {
		return err
	}
	return fmt.Errorf("%w: %s", err, msg)
}
