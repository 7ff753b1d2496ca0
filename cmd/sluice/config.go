package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/storage"
)

// envPrefix prefixes every environment variable sluice reads: the setting
// "data-dir" is SLUICE_DATA_DIR.
const envPrefix = "SLUICE"

// serveConfig is a node's configuration after parsing and validation. It is
// built from, in order of precedence, flags, SLUICE_* environment
// variables, the --config file and the flag defaults.
type serveConfig struct {
	DataDir           string
	Listen            string
	AdvertisedAddr    string // host:port clients are told to connect to; "" derives it from Listen
	MetricsListen     string // "" disables the metrics endpoint
	NodeID            int32
	Flush             storage.FlushMode
	FlushInterval     time.Duration
	AutoCreateTopics  bool
	DefaultPartitions int32
	LogLevel          slog.Level
	LogFormat         string // text or json
	JobsDir           string // directory of job files kept deployed; "" is off

	// Cluster mode (ClusterListen set): the node joins the others through
	// NATS routes; topics, leaders and ISRs live in the cluster metadata.
	ClusterListen   string        // host:port of this node's NATS route listener
	Peers           []string      // the other nodes' route addresses
	ClusterName     string        // NATS cluster name, the same on every node
	Rack            string        // for rack-aware replica placement
	SessionTimeout  time.Duration // a node is dead this long after its last heartbeat
	ReplicaLagMax   time.Duration // replica.lag.time.max.ms
	DefaultReplicas int32         // replication factor of topics created without one; 0: min(3, nodes)
}

// clustered reports whether the node runs as part of a cluster.
func (c serveConfig) clustered() bool { return c.ClusterListen != "" }

// serveKeys are the settings sluice serve accepts, each a flag, a config
// file key and an environment variable. A config file key not listed here
// is an error, so a misspelt setting is not silently ignored.
var serveKeys = []string{
	"data-dir", "listen", "advertised-addr", "metrics-listen", "node-id",
	"flush", "flush-interval", "auto-create-topics", "default-partitions",
	"log-level", "log-format", "jobs-dir",
	"cluster-listen", "peers", "cluster-name", "rack", "session-timeout",
	"replica-lag-time-max", "default-replication-factor",
}

// addServeFlags declares serve's flags with their defaults; the defaults
// are what `sluice serve` with no configuration runs with.
func addServeFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (YAML, TOML or JSON, chosen by extension) with the settings below as keys")
	fs.String("data-dir", "./sluice-data", "directory holding the node's topics and partitions")
	fs.String("listen", "127.0.0.1:9092", "address of the Kafka protocol listener")
	fs.String("advertised-addr", "", "host:port that metadata tells clients to connect to (default: the listen address; on a wildcard listen address, the address each client connected to)")
	fs.String("metrics-listen", "127.0.0.1:9644", "HTTP address serving Prometheus /metrics and the job admin API (/v1/jobs, used by sluice job); empty disables both")
	fs.Int32("node-id", 1, "this node's id")
	fs.String("flush", "sync", "when appends reach the disk: sync (acknowledged writes are fsynced; group commit), interval (fsync every --flush-interval), os (leave it to the kernel)")
	fs.Duration("flush-interval", time.Second, "fsync period for --flush interval")
	fs.Bool("auto-create-topics", false, "create unknown topics on produce or metadata requests")
	fs.Int32("default-partitions", 1, "partition count of auto-created topics")
	fs.String("log-level", "info", "debug, info, warn or error")
	fs.String("log-format", "text", "text or json")
	fs.String("jobs-dir", "", "directory of job files (*.yaml) to keep deployed: a new or changed file is deployed, a removed one stops its job; empty disables")
	fs.String("cluster-listen", "", "host:port for cluster traffic (NATS routes); setting it runs the node as part of a replicated cluster with --peers")
	fs.String("peers", "", "comma-separated cluster-listen addresses of the other nodes")
	fs.String("cluster-name", "sluice", "cluster name, the same on every node")
	fs.String("rack", "", "this node's rack, for spreading a partition's replicas over racks")
	fs.Duration("session-timeout", 3*time.Second, "a node that sent no heartbeat for this long is dead and loses its leaderships")
	fs.Duration("replica-lag-time-max", 10*time.Second, "a follower that has not caught up for this long leaves the ISR (Kafka's replica.lag.time.max.ms)")
	fs.Int32("default-replication-factor", 0, "replication factor of topics created without one; 0 means min(3, live nodes)")
}

// newServeViper layers flags over SLUICE_* environment variables over the
// config file. viper is used per invocation, never as a global, so tests
// can run commands side by side.
func newServeViper(fs *pflag.FlagSet) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	for _, k := range serveKeys {
		if err := v.BindPFlag(k, fs.Lookup(k)); err != nil {
			return nil, err
		}
	}
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		path = os.Getenv(envPrefix + "_CONFIG")
	}
	if path == "" {
		return v, nil
	}
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := checkFileKeys(path); err != nil {
		return nil, err
	}
	return v, nil
}

// checkFileKeys reads the config file on its own so that keys viper
// merged from flags and environment do not hide misspelt ones.
func checkFileKeys(path string) error {
	f := viper.New()
	f.SetConfigFile(path)
	if err := f.ReadInConfig(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	known := make(map[string]bool, len(serveKeys))
	for _, k := range serveKeys {
		known[k] = true
	}
	var unknown []string
	for _, k := range f.AllKeys() {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config file %s: unknown key(s) %s (known keys: %s)", path, strings.Join(unknown, ", "), strings.Join(serveKeys, ", "))
	}
	return nil
}

// loadServeConfig parses and checks every setting and reports every
// problem at once, each with its key, so a bad config is fixed in one pass.
// Values are read as strings and parsed here because viper's typed getters
// turn garbage into zero values.
func loadServeConfig(v *viper.Viper) (serveConfig, error) {
	var c serveConfig
	var problems []error
	bad := func(key string, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	str := func(key string) string { return strings.TrimSpace(fmt.Sprint(v.Get(key))) }

	c.DataDir = str("data-dir")
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	c.Listen = str("listen")
	if err := checkHostPort(c.Listen); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	}
	c.AdvertisedAddr = str("advertised-addr")
	if c.AdvertisedAddr != "" {
		if err := checkHostPort(c.AdvertisedAddr); err != nil {
			bad("advertised-addr", "%q: %v", c.AdvertisedAddr, err)
		} else if _, port, _ := net.SplitHostPort(c.AdvertisedAddr); port == "0" {
			bad("advertised-addr", "%q: clients cannot connect to port 0", c.AdvertisedAddr)
		}
	}
	c.MetricsListen = str("metrics-listen")
	if c.MetricsListen != "" {
		if err := checkHostPort(c.MetricsListen); err != nil {
			bad("metrics-listen", "%q: %v", c.MetricsListen, err)
		}
	}
	if n, err := strconv.ParseInt(str("node-id"), 10, 32); err != nil || n < 0 {
		bad("node-id", "%q is not a non-negative integer", str("node-id"))
	} else {
		c.NodeID = int32(n)
	}
	if m, err := broker.ParseFlushMode(str("flush")); err != nil {
		bad("flush", "%v", err)
	} else {
		c.Flush = m
	}
	if d, err := time.ParseDuration(str("flush-interval")); err != nil || d <= 0 {
		bad("flush-interval", "%q is not a positive duration such as 500ms or 2s", str("flush-interval"))
	} else {
		c.FlushInterval = d
	}
	if b, err := strconv.ParseBool(str("auto-create-topics")); err != nil {
		bad("auto-create-topics", "%q is not true or false", str("auto-create-topics"))
	} else {
		c.AutoCreateTopics = b
	}
	if n, err := strconv.ParseInt(str("default-partitions"), 10, 32); err != nil || n < 1 || n > broker.MaxPartitions {
		bad("default-partitions", "%q is not an integer in 1..%d", str("default-partitions"), broker.MaxPartitions)
	} else {
		c.DefaultPartitions = int32(n)
	}
	if err := c.LogLevel.UnmarshalText([]byte(str("log-level"))); err != nil {
		bad("log-level", "%q is not one of debug, info, warn, error", str("log-level"))
	}
	switch c.LogFormat = str("log-format"); c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "%q is not text or json", c.LogFormat)
	}
	// The directory must exist when the node starts: a typo in the path
	// would otherwise leave every job in it silently undeployed.
	if c.JobsDir = str("jobs-dir"); c.JobsDir != "" {
		if fi, err := os.Stat(c.JobsDir); err != nil {
			bad("jobs-dir", "%q: %v", c.JobsDir, errors.Unwrap(err))
		} else if !fi.IsDir() {
			bad("jobs-dir", "%q is not a directory", c.JobsDir)
		}
	}
	c.ClusterListen = str("cluster-listen")
	if c.ClusterListen != "" {
		if err := checkHostPort(c.ClusterListen); err != nil {
			bad("cluster-listen", "%q: %v", c.ClusterListen, err)
		} else if _, port, _ := net.SplitHostPort(c.ClusterListen); port == "0" {
			bad("cluster-listen", "%q: the other nodes need a fixed port", c.ClusterListen)
		}
	}
	for _, p := range strings.Split(str("peers"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if err := checkHostPort(p); err != nil {
			bad("peers", "%q: %v", p, err)
			continue
		}
		c.Peers = append(c.Peers, p)
	}
	if len(c.Peers) > 0 && c.ClusterListen == "" {
		bad("peers", "needs --cluster-listen, this node's own cluster address")
	}
	c.ClusterName = str("cluster-name")
	if c.ClusterName == "" || strings.ContainsAny(c.ClusterName, " .*>") {
		bad("cluster-name", "%q must be non-empty without spaces, '.', '*' or '>'", c.ClusterName)
	}
	c.Rack = str("rack")
	if d, err := time.ParseDuration(str("session-timeout")); err != nil || d < time.Second {
		bad("session-timeout", "%q is not a duration of at least 1s", str("session-timeout"))
	} else {
		c.SessionTimeout = d
	}
	if d, err := time.ParseDuration(str("replica-lag-time-max")); err != nil || d <= 0 {
		bad("replica-lag-time-max", "%q is not a positive duration", str("replica-lag-time-max"))
	} else {
		c.ReplicaLagMax = d
	}
	if n, err := strconv.ParseInt(str("default-replication-factor"), 10, 32); err != nil || n < 0 {
		bad("default-replication-factor", "%q is not a non-negative integer", str("default-replication-factor"))
	} else {
		c.DefaultReplicas = int32(n)
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("invalid configuration:\n  %w", joinIndented(problems))
	}
	return c, nil
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not a host:port address")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	return nil
}

// joinIndented joins errors one per line, indented under a heading.
func joinIndented(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}

// storageDefaults turns the node settings into topic defaults.
func (c serveConfig) storageDefaults() storage.Config {
	d := storage.DefaultConfig()
	d.FlushMode = c.Flush
	d.FlushInterval = c.FlushInterval
	return d
}

// brokerConfig is the node's broker configuration. externalHW hands the
// high watermarks to replication (cluster mode).
func (c serveConfig) brokerConfig(log *slog.Logger, externalHW bool) broker.Config {
	return broker.Config{
		DataDir:           c.DataDir,
		NodeID:            c.NodeID,
		Defaults:          c.storageDefaults(),
		AutoCreateTopics:  c.AutoCreateTopics,
		DefaultPartitions: c.DefaultPartitions,
		CleanInterval:     cleanInterval,
		ExternalHW:        externalHW,
		Logger:            log,
	}
}

// newLogger builds the node's logger on stderr.
func (c serveConfig) newLogger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
