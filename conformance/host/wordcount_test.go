package host

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sluicehost "github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	"github.com/sluice-io/sluice/internal/testnode"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

// The word-count example deployed with the CLI against a running node
// counts a multi-megabyte text over 4 partitions exactly as this test
// counts it, and `sluice job status` then shows 4 tasks with no lag.
func TestWordCountWithCLI(t *testing.T) {
	node := testnode.Start(t, t.TempDir())
	deployWordCount(t, node)

	truth := map[string]int64{}
	text := makeText(newTextGen(1), 14000, truth) // about 2.2 MB
	var size int
	for _, p := range text {
		for _, s := range p {
			size += len(s)
		}
	}
	if size < 2<<20 {
		t.Fatalf("the text is only %d bytes; the test wants a multi-megabyte one", size)
	}
	start := time.Now()
	produce(t, node.Addr, text)

	var got map[string]int64
	waitFor(t, 3*time.Minute, "counted", func() bool {
		got = readCounts(t, node.Addr)
		return len(got) == len(truth) && diff(got, truth) == ""
	})
	t.Logf("%d words (%d distinct, %d bytes of text) counted in %s", total(truth), len(truth), size, time.Since(start).Round(time.Millisecond))

	var split, count sluicehost.JobStatus
	waitForOr(t, time.Minute, "checkpointed with lag 0", func() bool {
		split, count = jobStatusCLI(t, node, "split"), jobStatusCLI(t, node, "count")
		return caughtUp(split) && caughtUp(count)
	}, func() string { return fmt.Sprintf("split: %+v\ncount: %+v", split, count) })
	out := must(t)(node.RunAdmin("", "job", "status", "count"))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Tasks:\s+4 running of 4; \d+ records in, \d+ out, \d+ records/s, lag 0$`),
		regexp.MustCompile(`(?m)^0\s+running\s+words\s`),
		regexp.MustCompile(`(?m)^3\s+running\s+words\s`),
	} {
		if !want.MatchString(out) {
			t.Errorf("job status count lacks %s:\n%s", want, out)
		}
	}
	list := must(t)(node.RunAdmin("", "job", "list"))
	for _, job := range []string{"split", "count"} {
		if !regexp.MustCompile(`(?m)^` + job + `\s+running\s+wazero\s+4/4\s+\d+\s+\d+\s+0$`).MatchString(list) {
			t.Errorf("job list lacks %s running 4/4 with lag 0:\n%s", job, list)
		}
	}
	// One record per word, unless a task restarted (a fault, for example
	// a call over its time limit on a loaded machine) and replayed from
	// its checkpoint; its state was rolled back, so the counts above are
	// still exact.
	st := jobStatusCLI(t, node, "count")
	restarts := 0
	for _, task := range st.Tasks {
		restarts += task.Restarts
		if task.LastError != "" {
			t.Logf("count task %d: %d restarts, last error: %s", task.Partition, task.Restarts, task.LastError)
		}
	}
	if in := recordsIn(st); in < total(truth) || (in > total(truth) && restarts == 0) {
		t.Errorf("count took in %d records with %d restarts, want %d (one per word)", in, restarts, total(truth))
	}
}

// The word count built from each SDK's operators (examples/wordcount/LANG)
// counts a text exactly on each runtime, through `sluice build` and `sluice
// job deploy` against a real node, as the Go one on wazero does above.
func TestWordCountInEveryLanguage(t *testing.T) {
	type language struct {
		name    string
		require func(testing.TB)
	}
	languages := []language{{"go", func(testing.TB) {}},
		{"c", cwasm.RequireToolchain}, {"rust", rustwasm.RequireToolchain}, {"as", aswasm.RequireToolchain}}
	for _, runtime := range runtimes.Known {
		for _, lang := range languages {
			if runtime == "wazero" && lang.name == "go" {
				continue // TestWordCountWithCLI
			}
			t.Run(lang.name+"/"+runtime, func(t *testing.T) {
				requireRuntime(t, runtime)
				lang.require(t)
				wordCountOnce(t, lang.name, runtime)
			})
		}
	}
}

// requireRuntime skips the test when this build lacks the runtime, except
// under CI=true, where CI must test every runtime.
func requireRuntime(t *testing.T, name string) {
	t.Helper()
	if err := runtimes.Check(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skip(err)
	}
}

// wordCountOnce runs the word count built in lang on runtime on a fresh
// node and requires exact counts.
func wordCountOnce(t *testing.T, lang, runtime string) {
	node := testnode.Start(t, t.TempDir())
	deployWordCountIn(t, node, lang, runtime, "")
	if st := jobStatusCLI(t, node, "count"); st.Runtime != runtime {
		t.Fatalf("count runs on %q, want %q", st.Runtime, runtime)
	}
	truth := map[string]int64{}
	produce(t, node.Addr, makeText(newTextGen(2), 3000, truth))
	waitFor(t, 3*time.Minute, "counted", func() bool {
		got := readCounts(t, node.Addr)
		return len(got) == len(truth) && diff(got, truth) == ""
	})
}

// recordsIn is the records a job's tasks took in since they started.
func recordsIn(st sluicehost.JobStatus) int64 {
	var n int64
	for _, task := range st.Tasks {
		n += int64(task.RecordsIn)
	}
	return n
}

// TestWordCountSurvivesKillNine kills the node with SIGKILL while count is
// working through its input, restarts it, feeds more text, and checks the
// final counts against the truth.
//
// Processing is at-least-once. A task checkpoints (outputs durable, then
// state, then input offsets committed) every commit interval; after a
// crash it resumes from its last committed offsets, so the records it had
// processed after them are processed again:
//
//   - split re-splits the sentences after its last checkpoint, appending
//     their words to "words" a second time. The excess (records in "words"
//     beyond the words of the text) is at most the words of the sentences
//     at or after split's committed offsets at the kill.
//   - count re-reads the words after its last checkpoint. Its state may
//     already hold some of their increments (state is flushed before
//     offsets are committed), so they may be counted twice. The excess
//     (the counts' sum beyond the records in "words") is at most the word
//     records count had not checkpointed: those below the end of "words"
//     at the kill and at or after count's committed offsets. "words" held
//     at most every word of the first text plus split's replays, so the
//     bound used is (words of the first text + split's excess) - count's
//     committed offsets.
//
// All of the first text is written before the kill, and the committed
// offsets are read just before it; committed offsets only grow, so these
// readings bound the replay from above. With a commit interval of 1s, each
// bound is about one second of the stage's input. Without a crash both
// excesses are zero (TestWordCountWithCLI).
func TestWordCountSurvivesKillNine(t *testing.T) {
	node := testnode.Start(t, t.TempDir())
	jobs := admin.NewClient(node.Admin, nil)

	// The first text is written before the jobs start, so that both start
	// at 0 and the kill below lands mid-stream for both: the pipeline would
	// otherwise keep up with the producer and be near the end of the text
	// by the time it is all written. count is deployed first (on a words
	// topic made for it), so that split is not done before count starts.
	// Small batches make the positions move in small steps.
	dir := buildWordCount(t, "go", "", "limits:\n  max-batch-bytes: 16KiB\n")
	for _, topic := range []string{sentences, "words"} {
		must(t)(node.Run("", "topic", "create", topic, "--partitions", strconv.Itoa(partitions)))
	}
	truth := map[string]int64{}
	gen := newTextGen(2)
	before := makeText(gen, 8000, truth)
	wordsBefore := total(truth)
	produce(t, node.Addr, before)
	for _, job := range []string{"count", "split"} {
		must(t)(node.RunAdmin("", "job", "deploy", filepath.Join(dir, job+".yaml")))
	}

	// Kill once count has consumed a part of the words but far from all.
	var (
		splitCommitted [partitions]int64
		countCommitted [partitions]int64
		splitPosition  int64
		countPosition  int64
	)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		split := status(t, jobs, "split")
		count := status(t, jobs, "count")
		if len(split.Tasks) == partitions && len(count.Tasks) == partitions {
			splitPosition, countPosition = 0, 0
			for p := 0; p < partitions; p++ {
				splitCommitted[p] = split.Tasks[p].Inputs[0].Committed
				splitPosition += split.Tasks[p].Inputs[0].Position
				countCommitted[p] = count.Tasks[p].Inputs[0].Committed
				countPosition += count.Tasks[p].Inputs[0].Position
			}
			if countPosition >= wordsBefore/10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("count did not consume a tenth of the first text's %d words within 2 minutes: count at %d", wordsBefore, countPosition)
		}
		time.Sleep(5 * time.Millisecond)
	}
	node.Kill()
	if countPosition >= wordsBefore {
		t.Fatalf("count had consumed all %d words before the kill; the test did not kill it mid-stream", wordsBefore)
	}
	t.Logf("killed with split at %d of %d sentences, count at %d of %d words; committed: split %v, count %v",
		splitPosition, partitions*len(before[0]), countPosition, wordsBefore, splitCommitted, countCommitted)

	var splitBound, countCheckpointed int64
	for p := 0; p < partitions; p++ {
		for _, s := range before[p][max(int(splitCommitted[p]), 0):] {
			splitBound += int64(len(words(s)))
		}
		countCheckpointed += max(countCommitted[p], 0)
	}

	node.Restart()
	after := makeText(gen, 1000, truth)
	produce(t, node.Addr, after)

	waitFor(t, 3*time.Minute, "caught up after the restart", func() bool {
		// split first: once it has checkpointed everything, "words" is
		// complete, so count having checkpointed everything means done.
		return caughtUp(status(t, jobs, "split")) && caughtUp(status(t, jobs, "count"))
	})
	var wordsRecords int64
	for _, task := range status(t, jobs, "count").Tasks {
		wordsRecords += task.Inputs[0].End
	}
	// A task that fails on its own (a call over its time limit on a loaded
	// machine, say) also replays from its checkpoint; that is beyond the
	// bounds below, so it is reported with them.
	faults := ""
	for _, job := range []string{"split", "count"} {
		for _, task := range status(t, jobs, job).Tasks {
			if task.Restarts > 0 {
				faults += fmt.Sprintf("; %s task %d restarted %d times after the kill (last error: %s)", job, task.Partition, task.Restarts, task.LastError)
			}
		}
	}
	got := readCounts(t, node.Addr)

	for w, n := range truth {
		if got[w] < n {
			t.Errorf("%q counted %d times, but the text has it %d times: a record was lost", w, got[w], n)
		}
	}
	for w := range got {
		if _, ok := truth[w]; !ok {
			t.Errorf("%q counted but not in the text", w)
		}
	}
	splitExcess := wordsRecords - total(truth)
	countExcess := total(got) - wordsRecords
	countBound := wordsBefore + max(splitExcess, 0) - countCheckpointed
	if faults != "" {
		t.Log(faults[2:])
	}
	t.Logf("truth %d words; words topic %d records (split replay +%d, bound %d); counts total %d (count replay +%d, bound %d)",
		total(truth), wordsRecords, splitExcess, splitBound, total(got), countExcess, countBound)
	if splitExcess < 0 || splitExcess > splitBound {
		t.Errorf("words holds %d records for %d words of text: %d extra, outside [0, %d] (the words of split's sentences not checkpointed at the kill)%s",
			wordsRecords, total(truth), splitExcess, splitBound, faults)
	}
	if countExcess < 0 || countExcess > countBound {
		t.Errorf("counts add up to %d for %d word records: %d extra, outside [0, %d] (count's words not checkpointed at the kill)%s",
			total(got), wordsRecords, countExcess, countBound, faults)
	}
	if strings.Contains(node.Logs(), "panic:") {
		t.Errorf("node log mentions a panic:\n%s", node.Logs())
	}
}
