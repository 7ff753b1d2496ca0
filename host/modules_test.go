package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// compiledModules is how many compiled modules the node's runtime holds.
func (n *testNode) compiledModules() int {
	n.t.Helper()
	n.m.rtMu.Lock()
	rt := n.m.runtimes[DefaultRuntime]
	n.m.rtMu.Unlock()
	c, ok := rt.(runtimetest.CompiledModuleCounter)
	if !ok {
		n.t.Fatalf("runtime %T does not count its compiled modules", rt)
	}
	return c.CompiledModules()
}

// waitModules waits until the runtime holds want compiled modules.
func (n *testNode) waitModules(t *testing.T, want int, when string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() string {
		if got := n.compiledModules(); got != want {
			return fmt.Sprintf("%s: the runtime holds %d compiled modules, want %d", when, got, want)
		}
		return ""
	})
}

// TestReplacedVersionsFreeTheirModules: a job deployed as v1, v2 and v3
// (three different modules) keeps only v3's compiled module once its tasks
// have changed versions; refused versions keep none; v3 processes
// records; deleting the job frees its module too.
func TestReplacedVersionsFreeTheirModules(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 2)
	ctx := context.Background()
	// v1 and v2 are the hand-assembled no-op operator (two copies with
	// different sha256s), cheap to compile; v3 is the echo guest.
	version := func(v int) []byte {
		if v == 3 {
			return testguests.Build("echo")
		}
		return runtimetest.WithCustomSection(runtimetest.NoopModule(), "sluice-host-test-version", fmt.Appendf(nil, "%d", v))
	}
	spec := echoSpec("versions", "in", "out")
	sent := 0
	produce := func() {
		n.produceByKey("in", records(10, func(i int) kv { return kv{key: []byte(fmt.Sprintf("k%d", sent+i)), value: []byte("x")} }))
		sent += 10
		waitFor(t, 30*time.Second, func() string {
			if c := n.count("out"); c != int64(sent) {
				return fmt.Sprintf("out has %d records, want %d", c, sent)
			}
			return ""
		})
	}
	shas := map[string]bool{}
	for v := 1; v <= 3; v++ {
		st, err := n.m.DeployBy(ctx, spec, version(v), "test")
		if err != nil {
			t.Fatalf("deploy v%d: %v", v, err)
		}
		shas[st.ModuleSHA] = true
		n.waitTasks("versions", 10*time.Second, "running", func(ts TaskStatus) bool { return ts.State == TaskRunning })
		n.waitModules(t, 1, fmt.Sprintf("v%d deployed", v))
	}
	produce()
	if len(shas) != 3 {
		t.Fatalf("the three versions have %d distinct modules", len(shas))
	}
	// A refused version (its init fails) leaves nothing compiled behind.
	if _, err := n.m.DeployBy(ctx, spec, testguests.Build("initfail"), "test"); err == nil {
		t.Fatal("a version whose init fails was deployed")
	}
	n.waitModules(t, 1, "refused version")
	// The same module deployed again (new parameters) shares the compiled
	// module; the replaced version's hold goes, the module stays.
	spec.Parameters = map[string]any{"again": true}
	if _, err := n.m.DeployBy(ctx, spec, version(3), "test"); err != nil {
		t.Fatal(err)
	}
	n.waitModules(t, 1, "v3 deployed again")
	produce()
	if st := n.status("versions"); st.Version != 5 || st.State != JobRunning {
		t.Fatalf("status %+v", st)
	}

	// Stop and Start keep the job's module; Delete frees it.
	if err := n.m.Stop(ctx, "versions"); err != nil {
		t.Fatal(err)
	}
	n.waitModules(t, 1, "job stopped")
	if err := n.m.Start(ctx, "versions"); err != nil {
		t.Fatal(err)
	}
	produce()
	if err := n.m.Delete(ctx, "versions"); err != nil {
		t.Fatal(err)
	}
	if got := n.compiledModules(); got != 0 {
		t.Fatalf("job deleted: the runtime holds %d compiled modules", got)
	}
}

// TestFailedStartFreesItsModule: a job that cannot start (its input topic
// is gone) holds no compiled module; Start compiles it again and runs once
// it can.
func TestFailedStartFreesItsModule(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	n.createTopic("in", 1)
	if _, err := n.m.Deploy(context.Background(), echoSpec("e", "in", "out"), runtimetest.NoopModule()); err != nil {
		t.Fatal(err)
	}
	n.waitModules(t, 1, "deployed")
	n.close()
	// The input topic disappears while the node is down.
	n = startNode(t, dir)
	t.Cleanup(n.close)
	if err := n.b.DeleteTopic("in"); err != nil {
		t.Fatal(err)
	}
	n.close()
	n = startNode(t, dir)
	t.Cleanup(n.close)
	if st := n.status("e"); st.State != JobFailed {
		t.Fatalf("status %+v", st)
	}
	n.waitModules(t, 0, "job failed to start")
	n.createTopic("in", 1)
	if err := n.m.Start(context.Background(), "e"); err != nil {
		t.Fatal(err)
	}
	n.waitModules(t, 1, "job started")
	n.waitTasks("e", 10*time.Second, "running", func(ts TaskStatus) bool { return ts.State == TaskRunning })
}
