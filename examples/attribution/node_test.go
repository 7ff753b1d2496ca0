//go:build !wasip1

package attribution_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice/examples/attribution/gen"
	"github.com/sluice-io/sluice/examples/internal/jointest"
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

// The Go operator, and the node killed (SIGKILL: no clean stop, so no
// last checkpoint) once the job has handled a part of its input, far from
// all, and started again on the same data dir. The job goes on from its
// last checkpoints: the input records it handled after them are handled
// again (at-least-once), so their outputs may be written twice. Every
// output the model expects is there, per topic and partition, at least as
// many times as expected, and no other.
func TestOnANodeWithACrash(t *testing.T) {
	goWasm, _ := modules(t)
	node, adm, d, want, stats := deployed(t, goWasm, 6000, "limits:", "  max-batch-bytes: 8KiB")
	total := int64(stats.Attributed + stats.Unmatched + stats.Late)
	inputs := int64(len(d.Impressions) + len(d.Clicks))

	// Kill once a tenth of the input is handled, a checkpoint taken (the
	// tasks restart from theirs: stores, outputs and offsets) and records
	// handled after it, or at the latest once half of the input is
	// handled. With small batches the tasks handle it in steps of about
	// 2%, a checkpoint every 100ms.
	at := jointest.WaitProgress(t, node, "attribution", 30*time.Second, func(p jointest.Progress) bool {
		return p.RecordsIn >= inputs/10 && p.Committed > 0 && p.RecordsIn > p.Committed || p.RecordsIn >= inputs/2
	})
	n := jointest.CountOutputs(adm, gen.Outputs...)
	node.Kill()
	if at.RecordsIn >= inputs*3/4 || n >= total {
		t.Fatalf("the job was too far (%d of %d input records handled, %d of %d outputs) when killed", at.RecordsIn, inputs, n, total)
	}
	t.Logf("killed the node with %d of %d input records handled (%d checkpointed) and %d of %d outputs written, at least",
		at.RecordsIn, inputs, at.Committed, n, total)
	node.Restart()

	// Done: every input record handled and checkpointed, and at least
	// the model's outputs written.
	end := jointest.WaitProgress(t, node, "attribution", 60*time.Second, func(p jointest.Progress) bool {
		return p.End == inputs && p.Position == inputs && p.Committed == inputs
	})
	jointest.WaitOutputs(t, adm, 30*time.Second, func(n int64) bool { return n >= total }, gen.Outputs...)
	// Nothing more comes.
	time.Sleep(500 * time.Millisecond)
	duplicates := 0
	for o, topic := range gen.Outputs {
		sorted := make([][]string, gen.Partitions)
		for p := range gen.Partitions {
			sorted[p] = gen.Sorted(want[o][p])
		}
		duplicates += jointest.ExpectTopicAtLeastOnce(t, node.Addr, topic, sorted)
	}
	// The restarted tasks went on from their last checkpoints, no
	// earlier than the one seen before the kill.
	t.Logf("the restarted node handled %d input records (from a checkpoint of %d); %d duplicate outputs (%d expected)",
		end.RecordsIn, inputs-end.RecordsIn, duplicates, total)
	if end.RecordsIn == 0 || end.RecordsIn > inputs-at.Committed {
		t.Errorf("the restarted node handled %d input records; %d were checkpointed before the kill", end.RecordsIn, at.Committed)
	}
}

// deployed starts a node with the attribution example's topics and the
// data of gen.Generate(13, impressions) in them, deploys the job with wasm
// as its module (and the extra lines in its job file), and returns the
// node, an admin client, the data and the model's outputs.
func deployed(t *testing.T, wasm []byte, impressions int, extra ...string) (*testnode.Node, *kadm.Client, gen.Data, gen.Result, gen.Stats) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	d := gen.Generate(13, impressions)
	node, client := jointest.StartNode(t, gen.Partitions,
		[]jointest.Topic{{Name: gen.ImpressionsTopic}, {Name: gen.ClicksTopic}}, d.Impressions, d.Clicks)
	want, stats := gen.Expected(d, gen.Partitions, gen.Window.Milliseconds(), gen.Lateness.Milliseconds())
	t.Logf("%d impressions, %d clicks; model: %+v", len(d.Impressions), len(d.Clicks), stats)
	jointest.MustRun(t, node.RunAdmin, "job", "deploy", jointest.JobFile(t, "attribution.yaml", wasm, extra...))
	return node, kadm.NewClient(client), d, want, stats
}

func onANode(t *testing.T, wasm []byte, restart bool) {
	node, adm, d, want, stats := deployed(t, wasm, 6000)
	total := int64(stats.Attributed + stats.Unmatched + stats.Late)
	inputs := int64(len(d.Impressions) + len(d.Clicks))
	var before int64 // input records handled before the stop, at least
	if restart {
		before = jointest.StopPartWay(t, node, adm, "attribution", total, gen.Outputs...)
	}
	jointest.WaitOutputs(t, adm, 60*time.Second, func(n int64) bool { return n >= total }, gen.Outputs...)
	// Nothing more comes.
	time.Sleep(500 * time.Millisecond)
	for o, topic := range gen.Outputs {
		sorted := make([][]string, gen.Partitions)
		for p := range gen.Partitions {
			sorted[p] = gen.Sorted(want[o][p])
		}
		jointest.ExpectTopic(t, node.Addr, topic, sorted)
	}
	// Every input record was handled once: with a restart, the node had
	// work left (the stop was part-way) and did only that.
	jointest.CheckHandledOnce(t, node, "attribution", inputs, before, restart)
}
