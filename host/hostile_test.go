package host

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Hostile modules fail only their own tasks, with a status that says
// what went wrong, and restart with backoff; a healthy job next to them
// keeps producing correct output.
func TestHostileModulesFailOnlyTheirTasks(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 2)
	// One record per oob problem; the others are plain.
	want := records(400, func(i int) kv {
		return kv{key: []byte(fmt.Sprintf("k%d", i)), value: []byte(fmt.Sprintf("v%d", i))}
	})
	n.produceByKey("in", want)
	bad := []kv{{key: []byte("bad-emit"), value: []byte("emit")}, {key: []byte("bad-get"), value: []byte("state_get")}}
	n.produce("in", 0, bad[:1])
	n.produce("in", 1, bad[1:])
	want = append(want, bad...)

	hostile := []struct {
		guest  string
		limits LimitsSpec
		want   []string // in LastError
	}{
		{"trap", LimitsSpec{}, []string{"trap"}},
		{"panic", LimitsSpec{}, []string{"panic"}},
		{"loop", LimitsSpec{CallTimeout: 300 * time.Millisecond}, []string{"timeout"}},
		{"membomb", LimitsSpec{MemoryBytes: 48 << 20}, []string{"memory"}},
		{"oob", LimitsSpec{}, []string{"ABI violation"}},
		{"openfile", LimitsSpec{}, []string{"open", "on-error: fail"}},
	}
	for _, h := range hostile {
		spec := echoSpec("bad-"+h.guest, "in", "out-"+h.guest)
		spec.Limits = h.limits
		n.deploy(spec, h.guest)
	}
	n.deploy(echoSpec("good", "in", "out-good"), "echo")

	for _, h := range hostile {
		st := n.waitTasks("bad-"+h.guest, 60*time.Second, "failed and restarted", func(ts TaskStatus) bool {
			return ts.Restarts >= 1 && ts.LastError != ""
		})
		for _, ts := range st.Tasks {
			if !containsAll(ts.LastError, h.want...) {
				t.Errorf("%s task %d: last error %q does not mention %q", h.guest, ts.Partition, ts.LastError, h.want)
			}
			if ts.Inputs[0].Committed > 0 && h.guest != "oob" {
				t.Errorf("%s task %d committed offset %d although every record fails", h.guest, ts.Partition, ts.Inputs[0].Committed)
			}
			if ts.LastErrorAt.IsZero() {
				t.Errorf("%s task %d: no error time", h.guest, ts.Partition)
			}
		}
		t.Logf("%s: %s", h.guest, st.Tasks[0].LastError)
	}
	// oob: every host function's bad pointer is an ABI fault naming it.
	oob := n.status("bad-oob")
	var oobErrs []string
	for _, ts := range oob.Tasks {
		oobErrs = append(oobErrs, ts.LastError)
	}
	if all := strings.Join(oobErrs, "\n"); !strings.Contains(all, "emit") && !strings.Contains(all, "state_get") {
		t.Errorf("oob errors do not name the host function: %s", all)
	}
	// Restarts are counted in the metrics too.
	if got := metricSum(t, n, "sluice_task_restarts_total", "bad-trap"); got < 2 {
		t.Errorf("restarts metric for bad-trap = %v, want >= 2 (one per task)", got)
	}

	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out-good"); c != int64(len(want)) {
			return fmt.Sprintf("out-good has %d records", c)
		}
		return ""
	})
	checkEcho(t, n, "out-good", want)
	for _, ts := range n.status("good").Tasks {
		if ts.Restarts != 0 || ts.LastError != "" || ts.State != TaskRunning {
			t.Errorf("the healthy job's task %d was affected: %+v", ts.Partition, ts)
		}
	}
	// Nothing a failing task emitted before failing was appended.
	for _, h := range []string{"trap", "panic", "loop", "membomb", "openfile"} {
		if c := n.count("out-" + h); c != 0 {
			t.Errorf("out-%s has %d records from failed calls", h, c)
		}
	}
}

func metricSum(t *testing.T, n *testNode, name, job string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "job" && l.GetValue() == job {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// poisonInput makes 300 records over 2 partitions of topic in, of which
// those with i%50 == 7 (and i == 8, so that two poison records follow each
// other) are "poison".
func poisonInput(n *testNode) (good, poison []kv) {
	n.createTopic("in", 2)
	all := records(300, func(i int) kv {
		v := fmt.Sprintf("v%d", i)
		if i%50 == 7 || i == 8 {
			v = "poison"
		}
		return kv{key: []byte(fmt.Sprintf("k%03d", i)), value: []byte(v)}
	})
	for _, r := range all {
		if string(r.value) == "poison" {
			poison = append(poison, r)
		} else {
			good = append(good, r)
		}
	}
	n.produceByKey("in", all)
	return good, poison
}

func TestErrorPolicySkip(t *testing.T) {
	n := newNode(t)
	good, poison := poisonInput(n)
	spec := echoSpec("skipper", "in", "out")
	spec.OnError = PolicySkip
	n.deploy(spec, "fail-on")
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != int64(len(good)) {
			return fmt.Sprintf("out has %d records, want %d", c, len(good))
		}
		return ""
	})
	checkEcho(t, n, "out", good)
	st := n.waitTasks("skipper", 10*time.Second, "caught up", func(ts TaskStatus) bool {
		return ts.Inputs[0].Position == ts.Inputs[0].End
	})
	var skipped uint64
	for _, ts := range st.Tasks {
		skipped += ts.Skipped
		if ts.Restarts != 0 {
			t.Errorf("task %d restarted: %s", ts.Partition, ts.LastError)
		}
	}
	if skipped != uint64(len(poison)) {
		t.Errorf("skipped %d, want %d", skipped, len(poison))
	}
}

func TestErrorPolicyDeadLetter(t *testing.T) {
	n := newNode(t)
	good, poison := poisonInput(n)
	spec := echoSpec("dl", "in", "out")
	spec.OnError = PolicyDeadLetter
	n.deploy(spec, "fail-on")
	if info, ok := n.b.Topic("dl-dlq"); !ok || info.Partitions != 2 {
		t.Fatalf("dead-letter topic: %+v %v", info, ok)
	}
	waitFor(t, 30*time.Second, func() string {
		if c, d := n.count("out"), n.count("dl-dlq"); c != int64(len(good)) || d != int64(len(poison)) {
			return fmt.Sprintf("out has %d records (want %d), dlq %d (want %d)", c, len(good), d, len(poison))
		}
		return ""
	})
	checkEcho(t, n, "out", good)
	inParts := n.read("in")
	seen := map[string]bool{}
	for p, recs := range n.read("dl-dlq") {
		for _, r := range recs {
			h := map[string]string{}
			for _, hd := range r.headers {
				h[hd.Key] = string(hd.Value)
			}
			if string(r.value) != "poison" || !strings.Contains(h["sluice.error"], "poison record") || h["sluice.topic"] != "in" || h["sluice.partition"] != fmt.Sprint(p) {
				t.Errorf("dead letter %q=%q headers %v", r.key, r.value, h)
			}
			var off int64
			fmt.Sscan(h["sluice.offset"], &off)
			if src := inParts[p][off]; string(src.key) != string(r.key) || src.ts != r.ts {
				t.Errorf("dead letter %q: sluice.offset %d holds %q (ts %d vs %d)", r.key, off, src.key, src.ts, r.ts)
			}
			seen[string(r.key)] = true
		}
	}
	for _, r := range poison {
		if !seen[string(r.key)] {
			t.Errorf("poison record %q not dead-lettered", r.key)
		}
	}
	var dl uint64
	for _, ts := range n.status("dl").Tasks {
		dl += ts.DeadLettered
	}
	if dl != uint64(len(poison)) {
		t.Errorf("dead-lettered %d, want %d", dl, len(poison))
	}
}

func TestErrorPolicyFail(t *testing.T) {
	n := newNode(t)
	good, _ := poisonInput(n)
	n.deploy(echoSpec("failer", "in", "out"), "fail-on")
	st := n.waitTasks("failer", 30*time.Second, "in backoff", func(ts TaskStatus) bool {
		return ts.Restarts >= 1 && strings.Contains(ts.LastError, "poison record")
	})
	for _, ts := range st.Tasks {
		if !containsAll(ts.LastError, "record at in-", "on-error: fail") {
			t.Errorf("task %d: %q", ts.Partition, ts.LastError)
		}
	}
	// The records before each task's first poison record are in the output
	// (maybe more than once: the failing batch restarts from the
	// checkpoint), none after it.
	if c := n.count("out"); c >= int64(len(good)) {
		t.Errorf("out has %d records; the poison record should have stopped the tasks", c)
	}
}

// TestFaultingRecordsAreFoundAndHandled: an operator that traps (or loops
// past the call timeout) on some records kills its instance without saying
// which record did it. The task runs the batch in halves on new instances
// down to the record at fault and applies the error policy to it; every
// other record goes through exactly once, and the task never restarts.
func TestFaultingRecordsAreFoundAndHandled(t *testing.T) {
	for _, tc := range []struct {
		guest  string
		policy ErrorPolicy
		limits LimitsSpec
		want   string // in the dead letter's sluice.error
	}{
		{"trap", PolicyDeadLetter, LimitsSpec{}, "trap"},
		{"panic", PolicySkip, LimitsSpec{}, ""},
		{"loop", PolicyDeadLetter, LimitsSpec{CallTimeout: 200 * time.Millisecond}, "timeout"},
	} {
		t.Run(tc.guest, func(t *testing.T) {
			n := newNode(t)
			good, poison := poisonInput(n)
			spec := echoSpec("j", "in", "out")
			spec.OnError = tc.policy
			spec.Limits = tc.limits
			spec.Parameters = map[string]any{"on": "poison"}
			n.deploy(spec, tc.guest)
			waitFor(t, 60*time.Second, func() string {
				if c := n.count("out"); c != int64(len(good)) {
					return fmt.Sprintf("out has %d records, want %d", c, len(good))
				}
				return ""
			})
			st := n.waitTasks("j", 30*time.Second, "caught up", func(ts TaskStatus) bool {
				return ts.Inputs[0].Position == ts.Inputs[0].End
			})
			// Exactly once: checkEcho fails on duplicates.
			checkEcho(t, n, "out", good)
			var handled uint64
			for _, ts := range st.Tasks {
				handled += ts.Skipped + ts.DeadLettered
				if ts.Restarts != 0 {
					t.Errorf("task %d restarted: %s", ts.Partition, ts.LastError)
				}
			}
			if handled != uint64(len(poison)) {
				t.Errorf("%d records skipped or dead-lettered, want %d", handled, len(poison))
			}
			if got := metricSum(t, n, "sluice_task_instance_faults_total", "j"); got < float64(len(poison)) {
				t.Errorf("instance faults metric = %v, want >= %d", got, len(poison))
			}
			if tc.policy != PolicyDeadLetter {
				return
			}
			// Dead letters are visible once durable, which may be after
			// the task reports them.
			waitFor(t, 30*time.Second, func() string {
				if c := n.count("j-dlq"); c != int64(len(poison)) {
					return fmt.Sprintf("j-dlq has %d records, want %d", c, len(poison))
				}
				return ""
			})
			var letters int
			for _, recs := range n.read("j-dlq") {
				for _, r := range recs {
					letters++
					var errHeader string
					for _, h := range r.headers {
						if h.Key == "sluice.error" {
							errHeader = string(h.Value)
						}
					}
					if string(r.value) != "poison" || !strings.Contains(errHeader, tc.want) {
						t.Errorf("dead letter %q=%q with sluice.error %q, want a poison record and %q", r.key, r.value, errHeader, tc.want)
					}
				}
			}
			if letters != len(poison) {
				t.Errorf("%d dead letters, want %d", letters, len(poison))
			}
		})
	}
}

// TestPoisonRecordCheckpointsWhatCameBefore: with on-error: fail, the
// records before the failing one are checkpointed with the failure, so the
// restarts do not append their outputs again and again.
func TestPoisonRecordCheckpointsWhatCameBefore(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 1)
	recs := records(100, func(i int) kv {
		v := fmt.Sprintf("v%d", i)
		if i == 60 {
			v = "poison"
		}
		return kv{key: []byte(fmt.Sprintf("k%03d", i)), value: []byte(v)}
	})
	n.produce("in", 0, recs)
	spec := echoSpec("failer", "in", "out")
	spec.Parameters = map[string]any{"on": "poison"}
	n.deploy(spec, "trap")
	st := n.waitTasks("failer", 30*time.Second, "restarted twice", func(ts TaskStatus) bool {
		return ts.Restarts >= 2
	})
	ts := st.Tasks[0]
	if !containsAll(ts.LastError, "record at in-0 offset 60", "trap", "on-error: fail") || ts.Inputs[0].Committed != 60 {
		t.Errorf("last error %q, committed %d; want offset 60 named and committed", ts.LastError, ts.Inputs[0].Committed)
	}
	if c := n.count("out"); c != 60 {
		t.Errorf("out has %d records after %d restarts, want the 60 before the poison record once", c, ts.Restarts)
	}
}
