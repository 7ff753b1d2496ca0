package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/internal/testguests"
)

// tsRec is a record with an explicit timestamp for the merge tests.
type tsRec struct {
	key, value string
	ts         int64
	null       bool // a null value (a table tombstone)
}

// produceAt appends records, one batch each, to one partition with their
// own timestamps.
func (n *testNode) produceAt(topic string, partition int32, recs ...tsRec) {
	n.t.Helper()
	part, err := n.b.Partition(topic, partition)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, r := range recs {
		var bld batch.Builder
		bld.Reset(r.ts)
		var v []byte
		if !r.null {
			v = []byte(r.value)
		}
		bld.Add(0, r.ts, []byte(r.key), v, nil)
		if _, err := part.Append(bld.Finish(), 0); err != nil {
			n.t.Fatal(err)
		}
	}
}

// waitCount waits until a topic holds want records.
func (n *testNode) waitCount(topic string, want int64, timeout time.Duration) {
	n.t.Helper()
	waitFor(n.t, timeout, func() string {
		if c := n.count(topic); c != want {
			return fmt.Sprintf("%s has %d records, want %d", topic, c, want)
		}
		return ""
	})
}

// probeValues returns the values of a topic's partition p, with the
// stream time field removed (it depends on where calls are cut).
func probeValues(n *testNode, topic string, p int32) []string {
	var out []string
	for _, r := range n.read(topic)[p] {
		v := string(r.value)
		if i := strings.Index(v, " st="); i >= 0 {
			j := strings.Index(v[i+1:], " ")
			v = v[:i] + v[i+1+j:]
		}
		out = append(out, v)
	}
	return out
}

func joinSpec(name string) JobSpec {
	return JobSpec{
		Name:         name,
		Inputs:       []string{"a", "b"},
		Outputs:      []OutputSpec{{Topic: "out"}},
		Tables:       []TableSpec{{Name: "t", Topic: "tbl"}},
		MaxInputWait: 50 * time.Millisecond,
	}
}

// TestMergeOrder checks the documented order of a task with two inputs
// and a table, from records already in the logs: by timestamp, table
// records first on ties, then inputs by index, each topic in offset
// order (a4 comes after a3 although it is older), with the table as of
// each record.
func TestMergeOrder(t *testing.T) {
	n := newNode(t)
	for _, topic := range []string{"a", "b", "tbl"} {
		n.createTopic(topic, 2)
	}
	p := partitionForKey([]byte("k"), 2)
	n.produceAt("a", p, tsRec{"k", "a0", 10, false}, tsRec{"k", "a1", 30, false}, tsRec{"k", "a2", 30, false}, tsRec{"k", "a3", 50, false}, tsRec{"k", "a4", 40, false})
	n.produceAt("b", p, tsRec{"k", "b0", 20, false}, tsRec{"k", "b1", 30, false}, tsRec{"k", "b2", 45, false})
	n.produceAt("tbl", p, tsRec{"k", "v5", 5, false}, tsRec{"k", "v30", 30, false}, tsRec{"k", "", 42, true}, tsRec{"k", "v47", 47, false})
	n.deploy(joinSpec("j"), "joinprobe")
	n.waitCount("out", 8, 30*time.Second)
	want := []string{
		"in=0 off=0 ts=10 t=v5",
		"in=1 off=0 ts=20 t=v5",
		"in=0 off=1 ts=30 t=v30",
		"in=0 off=2 ts=30 t=v30",
		"in=1 off=1 ts=30 t=v30",
		"in=1 off=2 ts=45 t=-",
		"in=0 off=3 ts=50 t=v47",
		"in=0 off=4 ts=40 t=v47",
	}
	if got := probeValues(n, "out", p); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("merged order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st := n.waitTasks("j", 10*time.Second, "checkpointed", func(ts TaskStatus) bool {
		return ts.Partition != p || ts.Inputs[0].Committed == ts.Inputs[0].End && ts.Inputs[1].Committed == ts.Inputs[1].End
	})
	task := st.Tasks[p]
	if task.StreamTime != 50 {
		t.Errorf("stream time %d, want 50 (the largest stream timestamp; the table's 47 does not count)", task.StreamTime)
	}
	if len(task.Tables) != 1 || task.Tables[0].Applied != 4 || task.Tables[0].Position != 4 || task.Tables[0].End != 4 || task.Tables[0].BootstrapEnd != 4 {
		t.Errorf("table status %+v, want 4 applied, at 4 of 4", task.Tables)
	}
	if task.State != TaskRunning {
		t.Errorf("task state %s, want running once the table is bootstrapped", task.State)
	}
	if other := st.Tasks[1-p]; other.StreamTime != -1 {
		t.Errorf("task with no records has stream time %d, want -1", other.StreamTime)
	}

	// A restart keeps the stream time and the table, and reads no table
	// record twice.
	dir := n.dir
	n.close()
	n = startNode(t, dir)
	t.Cleanup(n.close)
	n.produceAt("a", p, tsRec{"k", "write", 60, false})
	n.waitCount("out", 9, 30*time.Second)
	last := n.read("out")[p][8]
	if want := "in=0 off=5 ts=60 st=50 t=v47 put=-7"; string(last.value) != want {
		t.Errorf("after restart: %q, want %q (stream time and table restored; the table is read-only)", last.value, want)
	}
	// Nothing else comes: in particular input b, at its end, is not read
	// again from the start.
	time.Sleep(500 * time.Millisecond)
	st = n.status("j")
	if c := n.count("out"); c != 9 || st.Tasks[p].RecordsIn != 1 {
		t.Errorf("after restart: %d outputs and %d records in, want 9 and 1", c, st.Tasks[p].RecordsIn)
	}
	if tb := st.Tasks[p].Tables[0]; tb.Applied != 0 || tb.Position != 4 {
		t.Errorf("after restart the table is %+v, want position 4 with nothing applied again", tb)
	}
}

// TestTableUpdatesWhileRunning: rows added and deleted after the job
// started reach the store in time order with the stream.
func TestTableUpdatesWhileRunning(t *testing.T) {
	n := newNode(t)
	n.createTopic("a", 1)
	n.createTopic("b", 1)
	n.createTopic("tbl", 1)
	n.produceAt("tbl", 0, tsRec{"u1", "alice", 1, false})
	n.deploy(joinSpec("j"), "joinprobe")
	n.produceAt("a", 0, tsRec{"u1", "c1", 10, false})
	n.waitCount("out", 1, 30*time.Second)
	n.produceAt("tbl", 0, tsRec{"u1", "alice2", 20, false})
	n.produceAt("a", 0, tsRec{"u1", "c2", 25, false})
	n.produceAt("tbl", 0, tsRec{"u1", "", 30, true})
	n.produceAt("b", 0, tsRec{"u1", "c3", 35, false})
	n.waitCount("out", 3, 30*time.Second)
	want := []string{"in=0 off=0 ts=10 t=alice", "in=0 off=1 ts=25 t=alice2", "in=1 off=0 ts=35 t=-"}
	if got := probeValues(n, "out", 0); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestCopartitioningIsChecked: deploy refuses inputs or tables with other
// partition counts or keys placed by another partitioner, and says how
// to fix it.
func TestCopartitioningIsChecked(t *testing.T) {
	n := newNode(t)
	n.createTopic("a", 2)
	n.createTopic("b", 2)
	n.createTopic("tbl", 3)
	_, err := n.m.Deploy(context.Background(), joinSpec("j"), testguests.Build("joinprobe"))
	if !errors.Is(err, ErrInvalidJob) || !containsAll(err.Error(), "table t", "3 partitions", "inputs have 2", "repartition") {
		t.Fatalf("a table with 3 partitions for 2-partition inputs: %v", err)
	}

	n.createTopic("tbl2", 2)
	spec := joinSpec("j")
	spec.Tables = []TableSpec{{Name: "t", Topic: "tbl2"}}
	// Keys where both partitioners agree, and where they do not.
	var same, differ string
	for i := 0; same == "" || differ == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		if partitioners[0].of([]byte(k), 2) == partitioners[1].of([]byte(k), 2) {
			same = k
		} else {
			differ = k
		}
	}
	// One topic by murmur2, the other by CRC-32.
	n.produceAt("a", partitioners[0].of([]byte(differ), 2), tsRec{differ, "x", 1, false})
	n.produceAt("b", partitioners[1].of([]byte(differ), 2), tsRec{differ, "x", 1, false})
	_, err = n.m.Deploy(context.Background(), spec, testguests.Build("joinprobe"))
	if !errors.Is(err, ErrInvalidJob) || !containsAll(err.Error(), "different partitioners", "a by murmur2", "b by CRC-32", "murmur2_random") {
		t.Fatalf("inputs by different partitioners: %v", err)
	}

	// A key in a partition no partitioner chooses.
	wrong := 1 - partitionForKey([]byte(same), 2)
	n.produceAt("tbl2", wrong, tsRec{same, "x", 1, false})
	spec.Inputs = []string{"a"}
	_, err = n.m.Deploy(context.Background(), spec, testguests.Build("joinprobe"))
	if !errors.Is(err, ErrInvalidJob) || !containsAll(err.Error(), "topic tbl2 is not partitioned by key", fmt.Sprintf("partition %d offset 0", wrong), fmt.Sprintf("key %q", same), "repartition") {
		t.Fatalf("misplaced key: %v", err)
	}
	if _, err := n.m.Status("j"); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("a refused job exists: %v", err)
	}
}

// TestMergeWaitsForALaggingInput: a record is held while another input
// has nothing, up to max-input-wait, so that an older record arriving
// meanwhile goes first; past the wait the task goes on without it.
func TestMergeWaitsForALaggingInput(t *testing.T) {
	n := newNode(t)
	n.createTopic("a", 1)
	n.createTopic("b", 1)
	n.createTopic("tbl", 1)
	spec := joinSpec("j")
	spec.MaxInputWait = 3 * time.Second
	n.deploy(spec, "joinprobe")
	// Both inputs have been idle since the task started; a's record waits
	// for b until 3 s after that.
	n.produceAt("a", 0, tsRec{"k", "late-producer", 100, false})
	time.Sleep(300 * time.Millisecond)
	if c := n.count("out"); c != 0 {
		t.Fatalf("a record was processed while input b was still waited for (%d outputs)", c)
	}
	n.produceAt("b", 0, tsRec{"k", "older", 50, false})
	n.waitCount("out", 2, 10*time.Second)
	want := []string{"in=1 off=0 ts=50 t=-", "in=0 off=0 ts=100 t=-"}
	if got := probeValues(n, "out", 0); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q: the older record of the lagging input goes first", got, want)
	}
	// b stays empty: a's next record goes through after at most the wait.
	start := time.Now()
	n.produceAt("a", 0, tsRec{"k", "alone", 200, false})
	n.waitCount("out", 3, 10*time.Second)
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("a record waited %s for an empty input; the bound is 3s", d)
	}
}

// TestStopInterruptsALongCall: stopping a job does not wait for a call
// that runs long (here: forever, under a one-minute limit); the records
// before it are checkpointed, so the next start neither repeats them nor
// skips the interrupted one.
func TestStopInterruptsALongCall(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 1)
	spec := JobSpec{Name: "slow", Inputs: []string{"in"}, Outputs: []OutputSpec{{Topic: "out"}},
		Parameters: map[string]any{"on": "stuck"}, Limits: LimitsSpec{CallTimeout: time.Minute}}
	n.deploy(spec, "loop")
	n.produce("in", 0, []kv{{value: []byte("a")}, {value: []byte("b")}})
	n.waitCount("out", 2, 10*time.Second)
	n.produce("in", 0, []kv{{value: []byte("stuck")}})
	time.Sleep(300 * time.Millisecond) // the call is running
	start := time.Now()
	if err := n.m.Stop(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stopping took %s: it waited for the call", d)
	}
	if err := n.m.Start(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	st := n.status("slow")
	if in := st.Tasks[0].Inputs[0]; in.Committed != 2 {
		t.Errorf("committed offset %d after the stop, want 2 (a and b done, the interrupted record not)", in.Committed)
	}
}

// TestTableBootstrapModes: by default a stream record sees the table as
// of its own timestamp, so a row written later (in time) is not seen
// yet; with bootstrap: full the whole table present at the start is
// applied first.
func TestTableBootstrapModes(t *testing.T) {
	n := newNode(t)
	n.createTopic("a", 1)
	n.createTopic("b", 1)
	n.createTopic("tbl", 1)
	n.produceAt("tbl", 0, tsRec{"k", "old", 5, false}, tsRec{"k", "new", 100, false})
	n.produceAt("a", 0, tsRec{"k", "c1", 10, false})
	byTime := joinSpec("bytime")
	byTime.Outputs = []OutputSpec{{Topic: "out-time"}}
	full := joinSpec("full")
	full.Outputs = []OutputSpec{{Topic: "out-full"}}
	full.Tables[0].Bootstrap = BootstrapFull
	n.deploy(byTime, "joinprobe")
	n.deploy(full, "joinprobe")
	n.waitCount("out-time", 1, 30*time.Second)
	n.waitCount("out-full", 1, 30*time.Second)
	if got := probeValues(n, "out-time", 0); len(got) != 1 || got[0] != "in=0 off=0 ts=10 t=old" {
		t.Errorf("bootstrap: timestamp gave %q, want the row as of ts 10 (old)", got)
	}
	if got := probeValues(n, "out-full", 0); len(got) != 1 || got[0] != "in=0 off=0 ts=10 t=new" {
		t.Errorf("bootstrap: full gave %q, want the whole table first (new)", got)
	}
	if _, err := ParseJob("x.yaml", []byte("name: j\nmodule: m\ninputs: [a]\noutputs: [o]\ntables:\n  - {topic: t, bootstrap: eager}\n")); err == nil || !strings.Contains(err.Error(), `tables[0].bootstrap: "eager" is not a bootstrap mode`) {
		t.Errorf("bad bootstrap mode: %v", err)
	}
}
