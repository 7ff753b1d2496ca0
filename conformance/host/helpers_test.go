package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	sluicehost "github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/testnode"
)

const (
	sentences  = "sentences"
	wordCounts = "word-counts"
	partitions = 4
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// cli runs the sluice binary with args (no --brokers or --admin added) in
// the repository root and fails the test unless it exits 0.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testnode.Binary(t), args...)
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// must returns a function that fails the test when a testnode command
// failed and returns its output otherwise: must(t)(node.Run(...)).
func must(t *testing.T) func(string, error) string {
	return func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
}

// deployWordCount builds the example's Go operators with `sluice build`
// next to copies of its job files (so the checkout gets no .wasm files),
// creates the sentences topic and deploys both jobs with `sluice job
// deploy`.
func deployWordCount(t *testing.T, node *testnode.Node) { deployWordCountIn(t, node, "go", "", "") }

// deployWordCountIn is deployWordCount with the operators of
// examples/wordcount/LANG and extra appended to both job files.
func deployWordCountIn(t *testing.T, node *testnode.Node, lang, runtime, extra string) {
	t.Helper()
	dir := buildWordCount(t, lang, runtime, extra)
	must(t)(node.Run("", "topic", "create", sentences, "--partitions", strconv.Itoa(partitions)))
	deployWordCountJobs(t, node, dir)
}

// buildWordCount writes the example's job files, with extra appended and
// their runtime replaced by runtime unless it is "", to a temporary
// directory, builds their operators from examples/wordcount/LANG where the
// files expect the modules, and returns the directory.
func buildWordCount(t *testing.T, lang, runtime, extra string) string {
	t.Helper()
	src := filepath.Join(repoRoot(), "examples", "wordcount")
	dir := t.TempDir()
	for _, job := range []string{"split", "count"} {
		yaml, err := os.ReadFile(filepath.Join(src, job+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if runtime != "" {
			const want = "\nruntime: wazero\n"
			if !bytes.Contains(yaml, []byte(want)) {
				t.Fatalf("%s.yaml does not say %q", job, want)
			}
			yaml = bytes.Replace(yaml, []byte(want), []byte("\nruntime: "+runtime+"\n"), 1)
		}
		file := filepath.Join(dir, job+".yaml")
		if err := os.WriteFile(file, append(yaml, extra...), 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := sluicehost.LoadJobFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out := cli(t, "build", filepath.Join(src, lang, job), "-o", spec.Module)
		if !strings.Contains(out, "sha256:") {
			t.Fatalf("sluice build printed %q", out)
		}
	}
	return dir
}

// deployWordCountJobs deploys the job files buildWordCount wrote.
func deployWordCountJobs(t *testing.T, node *testnode.Node, dir string) {
	t.Helper()
	for _, job := range []string{"split", "count"} {
		out := must(t)(node.RunAdmin("", "job", "deploy", filepath.Join(dir, job+".yaml")))
		if !strings.Contains(out, fmt.Sprintf("deployed %s: %d tasks", job, partitions)) {
			t.Fatalf("job deploy %s printed %q", job, out)
		}
	}
}

// textGen makes sentences of words with multi-byte UTF-8, punctuation and
// case variants, separated by runs of ASCII whitespace, so the test's own
// splitting has to agree with the operator on the example's word rule.
type textGen struct{ r *rand.Rand }

var vocabulary = strings.Fields(`the The THE of and to a in is it that was he for on are as with his
they I at be this have from or one had by word but not what all were we when your can said
there use an each which she do how their if will up other about out many then them these so
Straße naïve café 日本語 Ελληνικά привет — end. end, "quoted" (paren) don't co-op 42 3.14 x`)

var separators = []string{" ", " ", " ", " ", "  ", "\t", " \t ", "\r\n"}

func newTextGen(seed uint64) *textGen { return &textGen{r: rand.New(rand.NewPCG(seed, 7))} }

func (g *textGen) sentence() string {
	var b strings.Builder
	if g.r.IntN(10) == 0 {
		b.WriteString(" ") // leading whitespace
	}
	n := 1 + g.r.IntN(16)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(separators[g.r.IntN(len(separators))])
		}
		// Squaring skews the choice toward the front of the list, as word
		// frequencies are skewed.
		f := g.r.Float64()
		b.WriteString(vocabulary[int(f*f*float64(len(vocabulary)))])
	}
	if g.r.IntN(10) == 0 {
		b.WriteString("\t") // trailing whitespace
	}
	return b.String()
}

// words splits s by the example's contract: maximal runs of bytes other
// than the six ASCII whitespace bytes.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		switch r {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return true
		}
		return false
	})
}

// produce writes each partition's sentences to it in order, acks=all, and
// returns once all are acknowledged.
func produce(t *testing.T, addr string, perPartition [][]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for p, list := range perPartition {
		for _, s := range list {
			recs = append(recs, &kgo.Record{Topic: sentences, Partition: int32(p), Value: []byte(s)})
		}
	}
	for len(recs) > 0 {
		n := min(len(recs), 5000)
		if err := cl.ProduceSync(ctx, recs[:n]...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		recs = recs[n:]
	}
}

// makeText returns n sentences per partition and adds their words to
// truth.
func makeText(g *textGen, n int, truth map[string]int64) [][]string {
	out := make([][]string, partitions)
	for p := range out {
		for i := 0; i < n; i++ {
			s := g.sentence()
			out[p] = append(out[p], s)
			for _, w := range words(s) {
				truth[w]++
			}
		}
	}
	return out
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// readCounts reads word-counts from the start to its current end and
// returns the latest count per word.
func readCounts(t *testing.T, addr string) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(wordCounts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, wordCounts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	counts := map[string]int64{}
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out reading %s; partitions left: %v", wordCounts, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			n, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				t.Fatalf("%s-%d@%d: value %q is not a count", wordCounts, r.Partition, r.Offset, r.Value)
			}
			counts[string(r.Key)] = n
			if r.Offset == end-1 {
				delete(want, r.Partition)
			}
		})
	}
	return counts
}

// diff describes how got differs from want, for failure messages.
func diff(got, want map[string]int64) string {
	var b strings.Builder
	n := 0
	for w, c := range want {
		if got[w] != c && n < 10 {
			fmt.Fprintf(&b, "  %q: got %d, want %d\n", w, got[w], c)
			n++
		}
	}
	for w, c := range got {
		if _, ok := want[w]; !ok && n < 10 {
			fmt.Fprintf(&b, "  %q: got %d, not a word of the text\n", w, c)
			n++
		}
	}
	return b.String()
}

// status reads a job's status through the admin API.
func status(t *testing.T, c *admin.Client, job string) sluicehost.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Status(ctx, job)
	if err != nil {
		t.Fatalf("status %s: %v", job, err)
	}
	return st
}

// caughtUp reports whether every task of the job runs and has checkpointed
// everything its inputs hold.
func caughtUp(st sluicehost.JobStatus) bool {
	if st.State != sluicehost.JobRunning || len(st.Tasks) == 0 {
		return false
	}
	for _, task := range st.Tasks {
		if task.State != sluicehost.TaskRunning {
			return false
		}
		for _, in := range task.Inputs {
			if in.Lag != 0 || in.Committed != in.End {
				return false
			}
		}
	}
	return true
}

// jobStatusCLI runs `sluice job status NAME --json`.
func jobStatusCLI(t *testing.T, node *testnode.Node, job string) sluicehost.JobStatus {
	t.Helper()
	out := must(t)(node.RunAdmin("", "job", "status", job, "--json"))
	var st sluicehost.JobStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("job status --json: %v\n%s", err, out)
	}
	return st
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	waitForOr(t, within, what, cond, func() string { return "" })
}

// waitForOr is waitFor that adds explain's account of the last state seen
// to the failure.
func waitForOr(t *testing.T, within time.Duration, what string, cond func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s\n%s", what, within, explain())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
