//go:build !wasip1

package enrich_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice/examples/enrich/gen"
	"github.com/sluice-io/sluice/examples/internal/jointest"
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
	clicks := 20_000
	d := gen.Generate(11, clicks)
	node, client := jointest.StartNode(t, gen.Partitions, []jointest.Topic{
		{Name: gen.ClicksTopic},
		{Name: gen.ProfilesTopic, Flags: []string{"--config", "cleanup.policy=compact"}},
	}, d.Profiles, d.Clicks)
	want := gen.Expected(d, gen.Partitions)

	jointest.MustRun(t, node.RunAdmin, "job", "deploy", jointest.JobFile(t, "enrich.yaml", wasm))
	adm := kadm.NewClient(client)
	var before int64 // clicks handled before the stop, at least
	if restart {
		// Stop once a twentieth of the output is there.
		before = jointest.StopPartWay(t, node, adm, "enrich", int64(clicks), gen.OutputTopic)
	}
	jointest.WaitOutputs(t, adm, 60*time.Second, func(n int64) bool { return n >= int64(clicks) }, gen.OutputTopic)
	// Nothing more comes.
	time.Sleep(500 * time.Millisecond)
	sorted := make([][]string, gen.Partitions)
	for p := range gen.Partitions {
		sorted[p] = gen.Sorted(want[p])
	}
	jointest.ExpectTopic(t, node.Addr, gen.OutputTopic, sorted)
	// Every click was handled once: with a restart, the node had work
	// left (the stop was part-way) and did only that.
	jointest.CheckHandledOnce(t, node, "enrich", int64(clicks), before, restart)
}
