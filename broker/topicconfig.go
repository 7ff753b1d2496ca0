package broker

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/broker/storage"
)

// topicConfigKeys lists every topic config sluice understands, with how it
// maps onto storage.Config. Kafka clients send these names in CreateTopics
// and read them back from DescribeConfigs.
var topicConfigKeys = map[string]struct {
	apply    func(c *storage.Config, v string) error
	current  func(c storage.Config) string
	readOnly bool
}{
	"retention.ms": {
		apply:   func(c *storage.Config, v string) error { return parseInt(v, -1, &c.RetentionMs) },
		current: func(c storage.Config) string { return strconv.FormatInt(c.RetentionMs, 10) },
	},
	"retention.bytes": {
		apply:   func(c *storage.Config, v string) error { return parseInt(v, -1, &c.RetentionBytes) },
		current: func(c storage.Config) string { return strconv.FormatInt(c.RetentionBytes, 10) },
	},
	"segment.bytes": {
		apply: func(c *storage.Config, v string) error {
			if err := parseInt(v, 1024, &c.SegmentBytes); err != nil {
				return err
			}
			if c.SegmentBytes > 1<<31-1 {
				return fmt.Errorf("%s exceeds the 2 GiB segment limit", v)
			}
			return nil
		},
		current: func(c storage.Config) string { return strconv.FormatInt(c.SegmentBytes, 10) },
	},
	"segment.ms": {
		apply:   func(c *storage.Config, v string) error { return parseInt(v, 1, &c.SegmentMs) },
		current: func(c storage.Config) string { return strconv.FormatInt(c.SegmentMs, 10) },
	},
	"index.interval.bytes": {
		apply: func(c *storage.Config, v string) error {
			var n int64
			if err := parseInt(v, 0, &n); err != nil {
				return err
			}
			c.IndexIntervalBytes = int(n)
			return nil
		},
		current: func(c storage.Config) string { return strconv.Itoa(c.IndexIntervalBytes) },
	},
	"delete.retention.ms": {
		apply:   func(c *storage.Config, v string) error { return parseInt(v, 0, &c.DeleteRetentionMs) },
		current: func(c storage.Config) string { return strconv.FormatInt(c.DeleteRetentionMs, 10) },
	},
	"cleanup.policy": {
		apply: func(c *storage.Config, v string) error {
			c.Compact, c.Delete = false, false
			for _, p := range strings.Split(v, ",") {
				switch strings.TrimSpace(p) {
				case "compact":
					c.Compact = true
				case "delete":
					c.Delete = true
				default:
					return fmt.Errorf("%q is not one of delete, compact, or compact,delete", v)
				}
			}
			return nil
		},
		current: func(c storage.Config) string {
			switch {
			case c.Compact && c.Delete:
				return "compact,delete"
			case c.Compact:
				return "compact"
			default:
				return "delete"
			}
		},
	},
	"flush.policy": {
		apply: func(c *storage.Config, v string) error {
			m, err := ParseFlushMode(v)
			c.FlushMode = m
			return err
		},
		current: func(c storage.Config) string { return FlushModeName(c.FlushMode) },
	},
	"flush.ms": {
		apply: func(c *storage.Config, v string) error {
			var ms int64
			if err := parseInt(v, 1, &ms); err != nil {
				return err
			}
			c.FlushInterval = time.Duration(ms) * time.Millisecond
			return nil
		},
		current: func(c storage.Config) string { return strconv.FormatInt(c.FlushInterval.Milliseconds(), 10) },
	},
	// min.insync.replicas is not a storage setting: replication reads it
	// with MinInsyncReplicas, and describe reports the stored value.
	"min.insync.replicas": {
		apply:   func(c *storage.Config, v string) error { var n int64; return parseInt(v, 1, &n) },
		current: func(storage.Config) string { return "1" },
	},
}

// MinInsyncReplicas is a topic's min.insync.replicas: how many in-sync
// replicas (the leader included) an acks=all produce needs. Default 1.
func MinInsyncReplicas(configs map[string]string) int {
	n, err := strconv.Atoi(configs["min.insync.replicas"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// ParseFlushMode maps the flush.policy names to storage flush modes.
func ParseFlushMode(v string) (storage.FlushMode, error) {
	switch v {
	case "sync":
		return storage.FlushSync, nil
	case "interval":
		return storage.FlushInterval, nil
	case "os":
		return storage.FlushOS, nil
	}
	return storage.FlushSync, fmt.Errorf("%q is not one of sync, interval, os", v)
}

// FlushModeName is the inverse of ParseFlushMode.
func FlushModeName(m storage.FlushMode) string {
	switch m {
	case storage.FlushInterval:
		return "interval"
	case storage.FlushOS:
		return "os"
	default:
		return "sync"
	}
}

func parseInt(v string, min int64, dst *int64) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", v)
	}
	if n < min {
		return fmt.Errorf("%d is below the minimum %d", n, min)
	}
	*dst = n
	return nil
}

// effectiveConfig applies a topic's explicit configs on top of the node's
// defaults. Every bad key or value is reported, each with its key.
func effectiveConfig(defaults storage.Config, configs map[string]string) (storage.Config, error) {
	c := defaults
	var problems []string
	keys := make([]string, 0, len(configs))
	for k := range configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec, ok := topicConfigKeys[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unknown topic config", k))
			continue
		}
		if err := spec.apply(&c, configs[k]); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", k, err))
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return c, nil
}

// describe lists every supported config with its effective value.
func describe(defaults storage.Config, configs map[string]string) ([]ConfigEntry, error) {
	c, err := effectiveConfig(defaults, configs)
	if err != nil {
		return nil, err
	}
	out := make([]ConfigEntry, 0, len(topicConfigKeys))
	for name, spec := range topicConfigKeys {
		v, explicit := configs[name]
		if !explicit {
			v = spec.current(c)
		}
		out = append(out, ConfigEntry{Name: name, Value: v, IsDefault: !explicit, ReadOnly: spec.readOnly})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// validTopicName applies Kafka's rules: 1-249 characters from
// [a-zA-Z0-9._-], and not "." or "..".
func validTopicName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q is reserved", ErrInvalidTopic, name)
	}
	if len(name) > 249 {
		return fmt.Errorf("%w: %d characters, the limit is 249", ErrInvalidTopic, len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: %q contains %q; allowed are ASCII letters, digits, '.', '_' and '-'", ErrInvalidTopic, name, r)
		}
	}
	return nil
}

// collisionKey folds '.' into '_' because Kafka's metric names do the same,
// so topics "a.b" and "a_b" are refused as a pair, as Kafka refuses them.
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }
