package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker/storage"
)

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d":      7 * 24 * time.Hour,
		"1d12h":   36 * time.Hour,
		"0.5d":    12 * time.Hour,
		"90m":     90 * time.Minute,
		"-1":      -1,
		"forever": -1,
	} {
		got, err := parseRetention(in)
		if err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7x", "d", "xd", "0s", "-5h", "1d-2h", "0d"} {
		if got, err := parseRetention(in); err == nil {
			t.Errorf("parseRetention(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormat(t *testing.T) {
	r := &kgo.Record{Topic: "t", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("v%"), Timestamp: time.UnixMilli(1700000000123)}
	for format, want := range map[string]string{
		`%v\n`:                 "v%\n",
		`%T/%p@%o %k=%v %t\t|`: "t/3@42 k=v% 1700000000123\t|",
		`100%% \\ \q`:          `100% \ \q`,
		``:                     ``,
	} {
		f, err := compileFormat(format)
		if err != nil {
			t.Fatalf("compileFormat(%q): %v", format, err)
		}
		if got := string(f.append(nil, r)); got != want {
			t.Errorf("format %q = %q, want %q", format, got, want)
		}
	}
	for _, bad := range []string{"%", "%x", "a%"} {
		if _, err := compileFormat(bad); err == nil {
			t.Errorf("compileFormat(%q) succeeded", bad)
		}
	}
	f, _ := compileFormat("json")
	bin := &kgo.Record{Topic: "t", Value: []byte{0xff, 0}, Timestamp: time.UnixMilli(1)}
	if got, want := string(f.append(nil, bin)), `{"topic":"t","partition":0,"offset":0,"timestamp":1,"key":null,"value":[255,0]}`+"\n"; got != want {
		t.Errorf("json of binary record = %s, want %s", got, want)
	}
}

func TestLoadServeConfigDefaults(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addServeFlags(fs)
	v, err := newServeViper(fs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadServeConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./sluice-data" || c.Listen != "127.0.0.1:9092" || c.MetricsListen != "127.0.0.1:9644" ||
		c.NodeID != 1 || c.Flush != storage.FlushSync || c.FlushInterval != time.Second || c.AutoCreateTopics {
		t.Errorf("defaults: %+v", c)
	}
	d := c.storageDefaults()
	if d.FlushMode != storage.FlushSync || d.SegmentBytes != storage.DefaultConfig().SegmentBytes {
		t.Errorf("storage defaults: %+v", d)
	}
}

func TestLoadServeConfigEnv(t *testing.T) {
	t.Setenv("SLUICE_DATA_DIR", "/var/lib/sluice")
	t.Setenv("SLUICE_AUTO_CREATE_TOPICS", "true")
	t.Setenv("SLUICE_DEFAULT_PARTITIONS", "0")
	t.Setenv("SLUICE_METRICS_LISTEN", "")
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addServeFlags(fs)
	v, err := newServeViper(fs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = loadServeConfig(v)
	if err == nil || !strings.Contains(err.Error(), "default-partitions:") {
		t.Fatalf("SLUICE_DEFAULT_PARTITIONS=0: err %v, want one naming default-partitions", err)
	}
	t.Setenv("SLUICE_DEFAULT_PARTITIONS", "3")
	c, err := loadServeConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/sluice" || !c.AutoCreateTopics || c.DefaultPartitions != 3 {
		t.Errorf("from environment: %+v", c)
	}
}
