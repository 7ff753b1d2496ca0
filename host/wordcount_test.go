package host

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/gowasm"
)

// text makes deterministic sentences of about size bytes from a
// vocabulary with a skewed distribution, so that some words are counted
// many times and some once.
func text(seed uint64, size int) []string {
	r := rand.New(rand.NewPCG(seed, 42))
	vocab := make([]string, 3000)
	for i := range vocab {
		n := 2 + r.IntN(9)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		if i%17 == 0 {
			b[0] -= 'a' - 'A' // case is kept: "Word" and "word" differ
		}
		vocab[i] = string(b)
	}
	var out []string
	total := 0
	for total < size {
		words := make([]string, 3+r.IntN(15))
		for i := range words {
			// Squaring skews towards the start of the vocabulary.
			f := r.Float64()
			words[i] = vocab[int(f*f*float64(len(vocab)))]
		}
		s := strings.Join(words, " ")
		out = append(out, s)
		total += len(s)
	}
	return out
}

func countWords(sentences []string, into map[string]int) {
	for _, s := range sentences {
		for _, w := range strings.Fields(s) {
			into[w]++
		}
	}
}

// produceSentences spreads sentences over the partitions of "sentences"
// round robin, with null keys.
func (n *testNode) produceSentences(sentences []string) {
	n.t.Helper()
	info, _ := n.b.Topic("sentences")
	per := make([][]kv, info.Partitions)
	for i, s := range sentences {
		p := i % int(info.Partitions)
		per[p] = append(per[p], kv{value: []byte(s)})
	}
	for p, recs := range per {
		n.produce("sentences", int32(p), recs)
	}
}

// latestCounts reads word-counts: the latest value per key.
func (n *testNode) latestCounts() map[string]string {
	got := map[string]string{}
	for _, recs := range n.read("word-counts") {
		for _, r := range recs {
			got[string(r.key)] = string(r.value)
		}
	}
	return got
}

func (n *testNode) waitCounts(want map[string]int, timeout time.Duration) {
	n.t.Helper()
	waitFor(n.t, timeout, func() string {
		got := n.latestCounts()
		if len(got) != len(want) {
			return fmt.Sprintf("word-counts has %d words, want %d", len(got), len(want))
		}
		for w, c := range want {
			if got[w] != strconv.Itoa(c) {
				return fmt.Sprintf("count of %q is %q, want %d", w, got[w], c)
			}
		}
		return ""
	})
}

func (n *testNode) deployFile(path, src string) JobStatus {
	n.t.Helper()
	spec, err := LoadJobFile(path)
	if err != nil {
		n.t.Fatal(err)
	}
	spec.CommitInterval = 200 * time.Millisecond
	st, err := n.m.Deploy(context.Background(), spec, gowasm.MustBuild(src))
	if err != nil {
		n.t.Fatalf("deploy %s: %v", path, err)
	}
	return st
}

// The word count example end to end: split and count deployed from their
// job files, a few megabytes of text over 4 partitions, counts equal to
// those computed here. Then the count job's local state is deleted while
// it is stopped; it restores from the changelog and keeps counting right.
func TestWordCountAndRestore(t *testing.T) {
	n := newNode(t)
	n.createTopic("sentences", 4)
	size := 3 << 20
	if testing.Short() {
		size = 256 << 10
	}
	first := text(1, size)
	want := map[string]int{}
	countWords(first, want)
	n.produceSentences(first)

	n.deployFile("../examples/wordcount/split.yaml", "../examples/wordcount/go/split")
	n.deployFile("../examples/wordcount/count.yaml", "../examples/wordcount/go/count")
	if info, ok := n.b.Topic("count-counts-changelog"); !ok || info.Partitions != 4 {
		t.Fatalf("changelog topic: %+v %v", info, ok)
	}
	if info, ok := n.b.Topic("words"); !ok || info.Partitions != 4 {
		t.Fatalf("words topic: %+v %v", info, ok)
	}
	n.waitCounts(want, 5*time.Minute)
	total := 0
	for _, c := range want {
		total += c
	}
	t.Logf("%d bytes of text, %d words, %d distinct", size, total, len(want))

	// Restore: stop, delete every task's local state, start again.
	ctx := context.Background()
	if err := n.m.Stop(ctx, "count"); err != nil {
		t.Fatal(err)
	}
	if st := n.status("count"); st.State != JobStopped || len(st.Tasks) != 0 {
		t.Fatalf("after stop: %+v", st)
	}
	stateDir := filepath.Join(n.dir, "jobs", "count", "state")
	if _, err := os.Stat(filepath.Join(stateDir, "0")); err != nil {
		t.Fatalf("no local state to delete: %v", err)
	}
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	if err := n.m.Start(ctx, "count"); err != nil {
		t.Fatal(err)
	}
	second := text(2, size/4)
	countWords(second, want)
	n.produceSentences(second)
	n.waitCounts(want, 5*time.Minute)

	n.m.mu.Lock()
	tasks := n.m.jobs["count"].tasks
	n.m.mu.Unlock()
	var restored int64
	for _, tk := range tasks {
		tk.statusMu.Lock()
		restored += tk.restoredMax
		tk.statusMu.Unlock()
	}
	if restored == 0 {
		t.Error("no changelog records were restored after the local state was deleted")
	}
	t.Logf("restored %d changelog records", restored)
}
