//go:build !wasip1

package enrich_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/examples/enrich/gen"
	"github.com/sluice-io/sluice/internal/testnode"
)

// The enrich job on a real node (`sluice serve`), driven as the README
// says: topics created with `sluice topic create`, the generated data
// produced by a Kafka client (partitioned by key), the job deployed with
// `sluice job deploy` after all of it is in; then clicks-enriched holds
// exactly the model's records, per partition.
func TestOnANode(t *testing.T) {
	goWasm, _ := modules(t)
	onANode(t, goWasm, false)
}

// The same with the C operator, and the node stopped (SIGTERM: a clean
// stop, which checkpoints) part-way and started again: the output is
// still exactly the model's, without duplicates.
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
	mustRun(t, node.Run, "topic", "create", gen.ClicksTopic, "--partitions", fmt.Sprint(gen.Partitions))
	mustRun(t, node.Run, "topic", "create", gen.ProfilesTopic, "--partitions", fmt.Sprint(gen.Partitions), "--config", "cleanup.policy=compact")

	clicks := 20_000
	d := gen.Generate(11, clicks)
	client, err := kgo.NewClient(kgo.SeedBrokers(node.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := gen.Produce(pctx, client, d.Profiles); err != nil {
		t.Fatal(err)
	}
	if err := gen.Produce(pctx, client, d.Clicks); err != nil {
		t.Fatal(err)
	}
	want := gen.Expected(d, gen.Partitions)

	mustRun(t, node.RunAdmin, "job", "deploy", jobFile(t, "enrich.yaml", wasm))
	adm := kadm.NewClient(client)
	var before int64 // clicks handled before the stop, at least
	if restart {
		// Stop once a twentieth of the output is there.
		n := waitOutputs(t, adm, gen.OutputTopic, 30*time.Second, func(n int64) bool { return n >= int64(clicks/20) })
		before = recordsIn(t, node, "enrich")
		if err := node.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, node.Logs())
		}
		if n >= int64(clicks) {
			t.Fatalf("the job was done (%d outputs) before the stop", n)
		}
		t.Logf("stopping the node with %d of %d outputs written", n, clicks)
		node.Restart()
	}
	waitOutputs(t, adm, gen.OutputTopic, 60*time.Second, func(n int64) bool { return n >= int64(clicks) })
	// Nothing more comes.
	time.Sleep(500 * time.Millisecond)
	got := readTopic(t, node.Addr, gen.OutputTopic, gen.Partitions)
	for p := range gen.Partitions {
		if w := gen.Sorted(want[p]); !reflect.DeepEqual(got[p], w) {
			t.Errorf("%s partition %d: %d records, want %d\n%s", gen.OutputTopic, p, len(got[p]), len(w), diff(got[p], w))
		}
	}
	// Every click was handled once: with a restart, the node had work
	// left (the stop was part-way) and did only that.
	after := recordsIn(t, node, "enrich")
	if !restart && after != int64(clicks) || restart && (after == 0 || before+after > int64(clicks)) {
		t.Errorf("the node handled %d clicks (%d before the restart, at least); there are %d", after, before, clicks)
	}
}
