package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/broker/batch"
)

func openTest(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := Open(Config{DataDir: dir, NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func oneRecordBatch(value string) []byte {
	var bb batch.Builder
	bb.Reset(1)
	bb.Add(0, 1, nil, []byte(value), nil)
	return append([]byte(nil), bb.Finish()...)
}

func TestTopicNameRules(t *testing.T) {
	b := openTest(t, t.TempDir())
	for _, bad := range []string{"", ".", "..", "has space", "slash/x", "ünï", strings.Repeat("a", 250)} {
		if _, err := b.CreateTopic(bad, 1, nil); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("CreateTopic(%q) = %v, want ErrInvalidTopic", bad, err)
		}
	}
	if _, err := b.CreateTopic("a.b", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("a_b", 1, nil); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("a_b after a.b = %v, want collision error", err)
	}
	if _, err := b.CreateTopic("a.b", 1, nil); !errors.Is(err, ErrTopicExists) {
		t.Errorf("duplicate = %v", err)
	}
	for _, n := range []int32{0, -1, MaxPartitions + 1} {
		if _, err := b.CreateTopic("p", n, nil); !errors.Is(err, ErrInvalidPartitions) {
			t.Errorf("partitions %d = %v", n, err)
		}
	}
}

func TestTopicConfigErrorsNameTheKey(t *testing.T) {
	b := openTest(t, t.TempDir())
	_, err := b.CreateTopic("t", 1, map[string]string{
		"retention.ms":   "soon",
		"cleanup.policy": "shred",
		"no.such.key":    "1",
	})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"retention.ms", "cleanup.policy", "no.such.key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, ok := b.Topic("t"); ok {
		t.Error("topic was created despite bad config")
	}
}

func TestTopicsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Config{DataDir: dir, NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.CreateTopic("clicks", 3, map[string]string{"cleanup.policy": "compact", "retention.ms": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("gone", 1, nil); err != nil {
		t.Fatal(err)
	}
	p, _ := b.Partition("clicks", 2)
	if _, err := p.Append(oneRecordBatch("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	pid1, _ := b.NextProducerID()
	cluster := b.ClusterID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := openTest(t, dir)
	if cluster == "" || b2.ClusterID() != cluster {
		t.Errorf("cluster id %q changed to %q across restart", cluster, b2.ClusterID())
	}
	if byID, ok := b2.TopicByID(info.ID); !ok || byID.Name != "clicks" {
		t.Errorf("TopicByID after restart = %+v, %v", byID, ok)
	}
	got, ok := b2.Topic("clicks")
	if !ok || got.ID != info.ID || got.Partitions != 3 || got.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("after restart: %+v %v", got, ok)
	}
	if _, ok := b2.Topic("gone"); ok {
		t.Error("deleted topic came back")
	}
	if _, err := os.Stat(filepath.Join(dir, "gone-0")); !os.IsNotExist(err) {
		t.Errorf("deleted topic's directory still there: %v", err)
	}
	p2, err := b2.Partition("clicks", 2)
	if err != nil {
		t.Fatal(err)
	}
	if p2.LogEndOffset() != 1 {
		t.Errorf("log end offset after restart = %d, want 1", p2.LogEndOffset())
	}
	pid2, _ := b2.NextProducerID()
	if pid2 <= pid1 {
		t.Errorf("producer id %d reused after restart (had %d)", pid2, pid1)
	}
	entries, err := b2.DescribeConfigs("clicks")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]ConfigEntry{}
	for _, e := range entries {
		seen[e.Name] = e
	}
	if e := seen["cleanup.policy"]; e.Value != "compact" || e.IsDefault {
		t.Errorf("cleanup.policy = %+v", e)
	}
	if e := seen["segment.bytes"]; e.Value != "1073741824" || !e.IsDefault {
		t.Errorf("segment.bytes = %+v", e)
	}
}

func TestDamagedMetadataRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir)
	if _, err := b.CreateTopic("x", 1, nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	path := filepath.Join(dir, metadataFile)
	raw, _ := os.ReadFile(path)
	// Change a byte inside the body without breaking the JSON syntax.
	i := strings.Index(string(raw), `\"x\"`)
	if i < 0 {
		i = strings.Index(string(raw), `"x"`)
	}
	if i < 0 {
		t.Fatalf("topic name not found in %s", raw)
	}
	damaged := strings.Replace(string(raw), "x", "y", 1)
	if err := os.WriteFile(path, []byte(damaged), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Open on damaged metadata = %v, want a 'damaged' error", err)
	}
}

func TestUnknownPartitionAndAutoCreate(t *testing.T) {
	b := openTest(t, t.TempDir())
	if _, err := b.Partition("nope", 0); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if _, err := b.EnsureTopic("nope"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("EnsureTopic without auto-create: %v", err)
	}
	b.cfg.AutoCreateTopics = true
	b.cfg.DefaultPartitions = 2
	info, err := b.EnsureTopic("auto")
	if err != nil || info.Partitions != 2 {
		t.Fatalf("EnsureTopic = %+v, %v", info, err)
	}
	if _, err := b.Partition("auto", 2); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("partition 2 of a 2-partition topic: %v", err)
	}
}
