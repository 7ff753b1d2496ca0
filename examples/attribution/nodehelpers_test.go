//go:build !wasip1

package attribution_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/testnode"
)

type runFunc func(stdin string, args ...string) (string, error)

func mustRun(t *testing.T, run runFunc, args ...string) string {
	t.Helper()
	out, err := run("", args...)
	if err != nil {
		t.Fatalf("sluice %v: %v\n%s", args, err, out)
	}
	return out
}

// jobFile writes a copy of the example's job file that names wasm
// (written next to it) as its module and commits every 100ms.
func jobFile(t *testing.T, name string, wasm []byte) string {
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
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, job, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sumEnds is the number of records in topic (the sum of its partitions'
// end offsets), or -1 if the node does not answer.
func sumEnds(t *testing.T, adm *kadm.Client, topic string) int64 {
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

// waitOutputs polls topic's record count until done accepts it.
func waitOutputs(t *testing.T, adm *kadm.Client, topic string, timeout time.Duration, done func(int64) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var n int64
	for {
		n = sumEnds(t, adm, topic)
		if done(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d records after %v", topic, n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readTopic reads every record of topic, per partition, as sorted "ts key
// value" strings (gen.Output's format).
func readTopic(t *testing.T, addr, topic string, partitions int) [][]string {
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

// recordsIn is the number of input records the job's tasks handled since
// the node started (its status, from the admin API); it checks that the
// job is running.
func recordsIn(t *testing.T, node *testnode.Node, job string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := admin.NewClient(node.Admin, nil).Status(ctx, job)
	if err != nil {
		t.Fatalf("job status: %v", err)
	}
	if st.State != host.JobRunning || len(st.Tasks) == 0 {
		t.Errorf("job %s is %s with %d tasks", job, st.State, len(st.Tasks))
	}
	var n int64
	for _, tk := range st.Tasks {
		n += int64(tk.RecordsIn)
	}
	return n
}
