package bench

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/storage"
)

// Every produce path must write exactly the records it reports, and every
// consume path must read back exactly what is there: a benchmark that
// miscounts reports fiction.
func TestProduceAndConsumeCountsAgree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := StartEmbedded(t.TempDir(), storage.FlushSync, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	target := Target{Brokers: []string{e.Addr()}}
	const partitions = 3
	if created, err := target.EnsureTopic(ctx, "b", TopicSpec{Partitions: partitions}); err != nil || !created {
		t.Fatalf("EnsureTopic: created %v, %v", created, err)
	}
	if _, err := target.EnsureTopic(ctx, "b", TopicSpec{Partitions: partitions + 1}); err == nil {
		t.Fatal("EnsureTopic accepted an existing topic with a different partition count")
	}

	var total int64
	for _, tc := range []struct {
		name string
		run  func(context.Context, ProduceConfig) (Result, error)
		cfg  ProduceConfig
	}{
		{"raw acks=all", target.ProduceRaw, ProduceConfig{Records: 10_000, RecordSize: 50, BatchSize: 100, Acks: -1, Connections: 2, Inflight: 3}},
		{"raw acks=0", target.ProduceRaw, ProduceConfig{Records: 5_000, RecordSize: 10, BatchSize: 500, Acks: 0, Connections: 4, Inflight: 1}},
		{"raw more connections than partitions", target.ProduceRaw, ProduceConfig{Records: 3_000, RecordSize: 1, BatchSize: 10, Acks: 1, Connections: 5, Inflight: 2}},
		{"kgo", target.ProduceKgo, ProduceConfig{Records: 7_001, RecordSize: 20, BatchSize: 100, Acks: -1, Connections: 2, Inflight: 2}},
	} {
		before, err := target.endOffsets(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		tc.cfg.Topic, tc.cfg.Timeout = "b", time.Minute
		res, err := tc.run(ctx, tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after, err := target.endOffsets(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		var grew int64
		for p := range after {
			grew += after[p] - before[p]
		}
		if res.Records < tc.cfg.Records || grew != res.Records {
			t.Errorf("%s: reported %d records (asked for %d), end offsets grew by %d", tc.name, res.Records, tc.cfg.Records, grew)
		}
		if res.Bytes != res.Records*int64(tc.cfg.RecordSize) || res.Elapsed <= 0 || res.RecordsPerSec() <= 0 {
			t.Errorf("%s: inconsistent result %+v", tc.name, res)
		}
		if tc.cfg.Acks != 0 && len(res.Latencies) == 0 {
			t.Errorf("%s: no latency samples", tc.name)
		}
		total += res.Records
	}

	for _, tc := range []struct {
		name string
		run  func(context.Context, ConsumeConfig) (Result, error)
		cfg  ConsumeConfig
	}{
		{"raw", target.ConsumeRaw, ConsumeConfig{Connections: 2, FetchBytes: 64 << 10}},
		{"raw one byte fetches", target.ConsumeRaw, ConsumeConfig{Connections: 9, FetchBytes: 1}},
		{"kgo", target.ConsumeKgo, ConsumeConfig{Connections: 3, FetchBytes: 1 << 20}},
	} {
		tc.cfg.Topic, tc.cfg.Timeout = "b", time.Minute
		res, err := tc.run(ctx, tc.cfg)
		if err != nil {
			t.Fatalf("consume %s: %v", tc.name, err)
		}
		if res.Records != total {
			t.Errorf("consume %s read %d records, the topic holds %d", tc.name, res.Records, total)
		}
		if len(res.Latencies) == 0 {
			t.Errorf("consume %s: no latency samples", tc.name)
		}
	}
}

func TestJetStreamProduceConsume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := StartJetStream(t.TempDir(), SyncDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	checkJetStreamProduceConsume(ctx, t, js, 1)
}

// A three-server cluster holds an R3 stream; publishers and consumers
// spread over the servers.
func TestJetStreamClusterProduceConsume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server JetStream cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := StartJetStreamCluster(ctx, t.TempDir(), 3, SyncAlways)
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	checkJetStreamProduceConsume(ctx, t, js, 3)
}

// checkJetStreamProduceConsume publishes a workload and reads it back:
// both must count exactly the workload.
func checkJetStreamProduceConsume(ctx context.Context, t *testing.T, js *JetStream, replicas int) {
	t.Helper()
	if js.Replicas() != replicas {
		t.Errorf("stream replicas %d, want %d", js.Replicas(), replicas)
	}
	if err := js.ResetStream(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := ProduceConfig{Records: 5_003, RecordSize: 30, BatchSize: 100, Connections: 3, Timeout: time.Minute}
	res, err := js.Produce(ctx, cfg, 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != cfg.Records || len(res.Latencies) == 0 || res.Replicas != replicas {
		t.Errorf("published %d records with %d latency samples at R%d, want %d records at R%d",
			res.Records, len(res.Latencies), res.Replicas, cfg.Records, replicas)
	}
	got, err := js.Consume(ctx, ConsumeConfig{Connections: 3, FetchBytes: 4096}, 2, cfg.RecordSize)
	if err != nil {
		t.Fatal(err)
	}
	if got.Records != cfg.Records || got.Bytes != cfg.Records*int64(cfg.RecordSize) {
		t.Errorf("consumed %d records, %d bytes; want %d records of %d bytes", got.Records, got.Bytes, cfg.Records, cfg.RecordSize)
	}
}

func TestPercentileAndTable(t *testing.T) {
	r := Result{Records: 3_000_000, Bytes: 300_000_000, Elapsed: 2 * time.Second}
	for i := 100; i >= 1; i-- {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	if p := r.Percentile(0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := r.Percentile(0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if r.RecordsPerSec() != 1_500_000 || r.MBPerSec() != 150 {
		t.Errorf("rates %v %v", r.RecordsPerSec(), r.MBPerSec())
	}
	if got := (Result{System: "jetstream", Replicas: 3}).Name(); got != "jetstream-R3" {
		t.Errorf("R3 name %q", got)
	}
	if got := (Result{System: "sluice", Replicas: 1}).Name(); got != "sluice" {
		t.Errorf("R1 name %q", got)
	}
	for n, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%v) = %q, want %q", n, got, want)
		}
	}
}
