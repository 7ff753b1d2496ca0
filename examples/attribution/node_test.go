//go:build !wasip1

package attribution_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/examples/attribution/gen"
	"github.com/sluice-io/sluice/internal/testnode"
)

// The attribution job on a real node (`sluice serve`), driven as the
// README says: topics created with `sluice topic create`, the generated
// data produced by a Kafka client (partitioned by key), the job deployed
// with `sluice job deploy` after all of it is in; then each output topic
// holds exactly the model's records, per partition.
func TestOnANode(t *testing.T) {
	goWasm, _ := modules(t)
	onANode(t, goWasm, false)
}

// The same with the C operator, and the node stopped (SIGTERM: a clean
// stop, which checkpoints state, outputs and offsets) part-way and
// started again: the outputs are still exactly the model's, without
// duplicates.
func TestOnANodeWithARestart(t *testing.T) {
	_, cWasm := modules(t)
	onANode(t, cWasm, true)
}

func onANode(t *testing.T, wasm []byte, restart bool) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	ctx := context.Background()
	node := testnode.Start(t, t.TempDir())
	for _, topic := range []string{gen.ImpressionsTopic, gen.ClicksTopic} {
		mustRun(t, node.Run, "topic", "create", topic, "--partitions", fmt.Sprint(gen.Partitions))
	}
	d := gen.Generate(13, 6000)
	client, err := kgo.NewClient(kgo.SeedBrokers(node.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := gen.Produce(pctx, client, d.Impressions); err != nil {
		t.Fatal(err)
	}
	if err := gen.Produce(pctx, client, d.Clicks); err != nil {
		t.Fatal(err)
	}
	want, stats := gen.Expected(d, gen.Partitions, gen.Window.Milliseconds(), gen.Lateness.Milliseconds())
	total := int64(stats.Attributed + stats.Unmatched + stats.Late)
	t.Logf("%d impressions, %d clicks; model: %+v", len(d.Impressions), len(d.Clicks), stats)

	mustRun(t, node.RunAdmin, "job", "deploy", jobFile(t, "attribution.yaml", wasm))
	adm := kadm.NewClient(client)
	count := func() int64 {
		var n int64
		for _, topic := range gen.Outputs {
			n += max(sumEnds(t, adm, topic), 0)
		}
		return n
	}
	wait := func(timeout time.Duration, done func(int64) bool) int64 {
		deadline := time.Now().Add(timeout)
		for {
			n := count()
			if done(n) {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d output records after %v, want %d", n, timeout, total)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	inputs := int64(len(d.Impressions) + len(d.Clicks))
	var before int64 // input records handled before the stop, at least
	if restart {
		n := wait(30*time.Second, func(n int64) bool { return n >= total/20 })
		before = recordsIn(t, node, "attribution")
		if err := node.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, node.Logs())
		}
		if n >= total {
			t.Fatalf("the job was done (%d outputs) before the stop", n)
		}
		t.Logf("stopping the node with %d of %d outputs written", n, total)
		node.Restart()
	}
	wait(60*time.Second, func(n int64) bool { return n >= total })
	// Nothing more comes.
	time.Sleep(500 * time.Millisecond)
	for o, topic := range gen.Outputs {
		got := readTopic(t, node.Addr, topic, gen.Partitions)
		for p := range gen.Partitions {
			if w := gen.Sorted(want[o][p]); !reflect.DeepEqual(got[p], w) {
				t.Errorf("%s partition %d: %d records, want %d\n%s", topic, p, len(got[p]), len(w), diff(got[p], w))
			}
		}
	}
	// Every input record was handled once: with a restart, the node had
	// work left (the stop was part-way) and did only that.
	after := recordsIn(t, node, "attribution")
	if !restart && after != inputs || restart && (after == 0 || before+after > inputs) {
		t.Errorf("the node handled %d input records (%d before the restart, at least); there are %d", after, before, inputs)
	}
}
