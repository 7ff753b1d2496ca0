//go:build !wasip1

package jointest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/examples/internal/genkit"
	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/testnode"
)

// RunFunc runs a sluice command: testnode.Node's Run or RunAdmin.
type RunFunc func(stdin string, args ...string) (string, error)

// MustRun runs `sluice args...` and returns its output; it fails the test
// if the command fails.
func MustRun(t testing.TB, run RunFunc, args ...string) string {
	t.Helper()
	out, err := run("", args...)
	if err != nil {
		t.Fatalf("sluice %v: %v\n%s", args, err, out)
	}
	return out
}

// Topic is a topic to create with `sluice topic create`.
type Topic struct {
	Name  string
	Flags []string // more flags, e.g. --config cleanup.policy=compact
}

// StartNode starts a node on a fresh data dir, creates topics with
// `sluice topic create` (each with partitions partitions), and produces
// each of batches in turn with a Kafka client (genkit.Produce: partitioned
// by key). It returns the node and the client, closed at the test's
// cleanup.
func StartNode(t testing.TB, partitions int, topics []Topic, batches ...[]genkit.Record) (*testnode.Node, *kgo.Client) {
	t.Helper()
	node := testnode.Start(t, t.TempDir())
	for _, tp := range topics {
		MustRun(t, node.Run, append([]string{"topic", "create", tp.Name, "--partitions", fmt.Sprint(partitions)}, tp.Flags...)...)
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(node.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range batches {
		if err := genkit.Produce(ctx, client, b); err != nil {
			t.Fatal(err)
		}
	}
	return node, client
}

// JobFile writes a copy of the example's job file name (in the current
// directory) that names wasm (written next to it) as its module, commits
// every 100ms and has the extra lines (YAML) at its end, and returns its
// path.
func JobFile(t testing.TB, name string, wasm []byte, extra ...string) string {
	t.Helper()
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mod := filepath.Join(dir, "operator.wasm")
	if err := os.WriteFile(mod, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^module: .*$`)
	if !re.Match(src) {
		t.Fatalf("%s has no module line", name)
	}
	job := re.ReplaceAll(src, []byte("module: "+mod))
	job = append(job, "\ncommit-interval: 100ms\n"...)
	for _, l := range extra {
		job = append(job, l+"\n"...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, job, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// SumEnds is the number of records in topic (the sum of its partitions'
// end offsets), or -1 if the node does not answer.
func SumEnds(adm *kadm.Client, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// CountOutputs is the number of records in topics together (0 for a topic
// whose end offsets the node does not give).
func CountOutputs(adm *kadm.Client, topics ...string) int64 {
	var n int64
	for _, topic := range topics {
		n += max(SumEnds(adm, topic), 0)
	}
	return n
}

// WaitOutputs polls the number of records in topics (together) until
// done accepts it, and returns it; it fails the test after timeout.
func WaitOutputs(t testing.TB, adm *kadm.Client, timeout time.Duration, done func(int64) bool, topics ...string) int64 {
	t.Helper()
	n, ok := poll(timeout, 5*time.Millisecond, func() int64 { return CountOutputs(adm, topics...) }, done)
	if !ok {
		t.Fatalf("%v have %d records after %v", topics, n, timeout)
	}
	return n
}

// poll calls get every interval until done accepts its value or timeout
// passes, and returns the last value and whether done accepted it.
func poll[T any](timeout, interval time.Duration, get func() T, done func(T) bool) (T, bool) {
	deadline := time.Now().Add(timeout)
	for {
		v := get()
		if done(v) {
			return v, true
		}
		if time.Now().After(deadline) {
			return v, false
		}
		time.Sleep(interval)
	}
}

// ReadTopic reads every record of topic, per partition, as sorted "ts key
// value" strings (genkit.Output's format).
func ReadTopic(t testing.TB, addr, topic string, partitions int) [][]string {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets of %s: %v %v", topic, err, ends.Error())
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) > partitions {
		t.Fatalf("%s has %d partitions, want %d", topic, len(want), partitions)
	}
	out := make([][]string, partitions)
	for len(want) > 0 {
		fs := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v (left: %v)", topic, err, want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("reading %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], fmt.Sprintf("%d %s %s", r.Timestamp.UnixMilli(), r.Key, r.Value))
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	for _, s := range out {
		sort.Strings(s)
	}
	return out
}

// status is job's status from the node's admin API; it reports (with
// t.Errorf or t.Fatalf) that the job is not running.
func status(t testing.TB, node *testnode.Node, job string, report func(format string, args ...any)) host.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := admin.NewClient(node.Admin, nil).Status(ctx, job)
	if err != nil {
		t.Fatalf("job status: %v", err)
	}
	if st.State != host.JobRunning || len(st.Tasks) == 0 {
		report("job %s is %s with %d tasks", job, st.State, len(st.Tasks))
	}
	return st
}

// RecordsIn is the number of input records the job's tasks handled since
// the node started (its status, from the admin API); it checks that the
// job is running.
func RecordsIn(t testing.TB, node *testnode.Node, job string) int64 {
	t.Helper()
	return progressOf(status(t, node, job, t.Errorf)).RecordsIn
}

// StopPartWay waits until topics hold a twentieth of the total records
// the job will write to them, stops the node (SIGTERM: a clean stop, which
// checkpoints), checks that the job had not written them all yet, and
// starts the node again on its data dir. It returns the number of input
// records the job had handled before the stop, at least.
func StopPartWay(t testing.TB, node *testnode.Node, adm *kadm.Client, job string, total int64, topics ...string) int64 {
	t.Helper()
	n := WaitOutputs(t, adm, 30*time.Second, func(n int64) bool { return n >= total/20 }, topics...)
	before := RecordsIn(t, node, job)
	if err := node.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, node.Logs())
	}
	if n >= total {
		t.Fatalf("the job was done (%d outputs) before the stop", n)
	}
	t.Logf("stopping the node with %d of %d outputs written", n, total)
	node.Restart()
	return before
}

// CheckHandledOnce checks that the job handled each of its inputs input
// records once since the node started: all of them, or with restarted
// set (the node restarted cleanly after handling before of them, at
// least) some but no more than the rest.
func CheckHandledOnce(t testing.TB, node *testnode.Node, job string, inputs, before int64, restarted bool) {
	t.Helper()
	after := RecordsIn(t, node, job)
	if !restarted && after != inputs || restarted && (after == 0 || before+after > inputs) {
		t.Errorf("the node handled %d input records (%d before the restart, at least); there are %d", after, before, inputs)
	}
}

// ExpectTopic checks that each partition of topic holds exactly the
// records of want (sorted "ts key value" strings, as genkit.Sorted
// makes), as a multiset.
func ExpectTopic(t testing.TB, addr, topic string, want [][]string) {
	t.Helper()
	got := ReadTopic(t, addr, topic, len(want))
	for p := range want {
		if !reflect.DeepEqual(got[p], want[p]) {
			t.Errorf("%s partition %d: %d records, want %d\n%s", topic, p, len(got[p]), len(want[p]), Diff(got[p], want[p]))
		}
	}
}

// Progress is a job's progress over all its tasks and inputs, from its
// status.
type Progress struct {
	RecordsIn int64 // input records handled since the node started
	Position  int64 // input records handled in all (next offsets)
	Committed int64 // input records handled as of the last checkpoints
	End       int64 // input records there are (end offsets)
}

// JobProgress asks the node's admin API for job's progress; it checks that
// the job is running.
func JobProgress(t testing.TB, node *testnode.Node, job string) Progress {
	t.Helper()
	return progressOf(status(t, node, job, t.Fatalf))
}

// progressOf sums the figures of st's tasks.
func progressOf(st host.JobStatus) Progress {
	var p Progress
	for _, tk := range st.Tasks {
		p.RecordsIn += int64(tk.RecordsIn)
		for _, in := range tk.Inputs {
			p.Position += in.Position
			p.Committed += max(in.Committed, 0)
			p.End += in.End
		}
	}
	return p
}

// WaitProgress polls job's progress until done accepts it, and returns
// it; it fails the test after timeout.
func WaitProgress(t testing.TB, node *testnode.Node, job string, timeout time.Duration, done func(Progress) bool) Progress {
	t.Helper()
	p, ok := poll(timeout, 2*time.Millisecond, func() Progress { return JobProgress(t, node, job) }, done)
	if !ok {
		t.Fatalf("job %s: progress %+v after %v", job, p, timeout)
	}
	return p
}

// ExpectTopicAtLeastOnce checks that each partition of topic holds every
// record of want (sorted "ts key value" strings, as genkit.Sorted makes)
// at least as many times as want has it, and no record want does not
// have: the output of an at-least-once run. It returns how many records
// are there beyond want's (the duplicates).
func ExpectTopicAtLeastOnce(t testing.TB, addr, topic string, want [][]string) (duplicates int) {
	t.Helper()
	got := ReadTopic(t, addr, topic, len(want))
	for p := range want {
		missing, unexpected, dups := AtLeastOnce(got[p], want[p])
		duplicates += dups
		if len(missing) > 0 || len(unexpected) > 0 {
			t.Errorf("%s partition %d: %d records, want %d at least once: %d missing (first: %q), %d not expected (first: %q)",
				topic, p, len(got[p]), len(want[p]), len(missing), missing[:min(len(missing), 10)], len(unexpected), unexpected[:min(len(unexpected), 10)])
		}
	}
	return duplicates
}
