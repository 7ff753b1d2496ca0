package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/host"
)

// The word-count example's topics, fixed by examples/wordcount/README.md.
const (
	sentencesTopic  = "sentences"
	wordCountsTopic = "word-counts"
	demoPartitions  = 4
)

type demoOptions struct {
	repeat    int
	sentences int
	duration  time.Duration
	keep      bool
	dataDir   string
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the word-count pipeline on a throwaway node and watch it count",
		Long: `Start a complete node in this process with its data in a temporary directory,
build the Go operators of examples/wordcount (split and count) to WebAssembly,
create the topic "sentences" with 4 partitions, deploy split.yaml and
count.yaml as two jobs

  sentences -> split -> words (keyed, so partitioned, by word) -> count -> word-counts

and feed them a text: --sentences generated sentences (words drawn with
natural-language frequencies from a list of common English words), --repeat
times. While it runs it prints, every second, the records in and out of each
job and the top 5 words so far, read from word-counts like any Kafka client
would; at the end, the top 20 and whether every count equals the one computed
directly from the text.

The node's Kafka listener is printed, so you can look on from another shell,
e.g. kcat -b ADDR -C -t word-counts -f '%k %s\n'.

Run it from the repository root (it needs examples/ and the go command).`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.repeat < 1 || o.sentences < 1 {
				return usageError{errors.New("--repeat and --sentences must be at least 1")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.repeat, "repeat", 4, "feed the text this many times")
	f.IntVar(&o.sentences, "sentences", 5000, "sentences in the text (about 10 words, 60 bytes each)")
	f.DurationVar(&o.duration, "duration", 0, "stop counting after this long even if not everything is counted (0: run until done or interrupted)")
	f.BoolVar(&o.keep, "keep", false, "keep the node's data directory instead of removing it")
	f.StringVar(&o.dataDir, "data-dir", os.TempDir(), "parent of the node's temporary data directory")
	return cmd
}

// findExample locates examples/<name> from the working directory or one of
// its parents.
func findExample(name string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "examples", name)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("examples/%s not found in %s or its parents: run this from the sluice repository root (it builds the example operators from source)", name, wd)
		}
	}
}

// demoJob is one example job, built and parsed.
type demoJob struct {
	spec   host.JobSpec
	module builtModule
}

// loadExampleJob parses dir/file and builds its operator into tmp, so the
// checkout is left as it was. The operator's source is the job's source
// directory or else the directory of its module, where 'sluice build'
// would have written it.
func loadExampleJob(ctx context.Context, w io.Writer, dir, file, tmp string) (demoJob, error) {
	return loadExampleJobIn(ctx, w, dir, file, tmp, "go")
}

// loadExampleJobIn is loadExampleJob with the operator built from the
// example's version in another language: examples/wordcount/go/split
// becomes examples/wordcount/LANG/split.
func loadExampleJobIn(ctx context.Context, w io.Writer, dir, file, tmp, lang string) (demoJob, error) {
	spec, err := host.LoadJobFile(filepath.Join(dir, file))
	if err != nil {
		return demoJob{}, err
	}
	src := spec.Source
	if src == "" {
		src = filepath.Dir(spec.Module)
	}
	if lang != "go" {
		src = filepath.Join(dir, lang, filepath.Base(src))
	}
	start := time.Now()
	m, err := buildOperator(ctx, src, filepath.Join(tmp, spec.Name+".wasm"))
	if err != nil {
		return demoJob{}, err
	}
	rel, err := filepath.Rel(filepath.Dir(dir), src)
	if err != nil {
		rel = src
	}
	fmt.Fprintf(w, "built %s in %s: %s, sha256:%.12s\n", rel, time.Since(start).Round(100*time.Millisecond), humanBytes(int64(m.Size)), m.SHA256)
	return demoJob{spec: spec, module: m}, nil
}

func runDemo(ctx context.Context, out io.Writer, o *demoOptions) (err error) {
	dir, err := findExample("wordcount")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(o.dataDir, "sluice-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(out, "data kept in %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	split, err := loadExampleJob(ctx, out, dir, "split.yaml", tmp)
	if err != nil {
		return err
	}
	count, err := loadExampleJob(ctx, out, dir, "count.yaml", tmp)
	if err != nil {
		return err
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	node, err := startProcessingNode(ctx, filepath.Join(tmp, "node"), storage.FlushSync, log)
	if err != nil {
		return fmt.Errorf("starting the node: %w", err)
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the node: %w", cerr))
		}
	}()
	fmt.Fprintf(out, "node running in %s\n", tmp)
	fmt.Fprintf(out, "Kafka listener: %s   (watch with: kcat -b %s -C -t %s -f '%%k %%s\\n')\n", node.Addr(), node.Addr(), wordCountsTopic)

	if err := node.createTopic(sentencesTopic, demoPartitions); err != nil {
		return err
	}
	for _, j := range []demoJob{split, count} {
		st, err := node.jobs.Deploy(ctx, j.spec, j.module.Bytes)
		if err != nil {
			return fmt.Errorf("deploy %s: %w", j.spec.Name, err)
		}
		fmt.Fprintf(out, "deployed %s: %s -> %s, %d tasks\n", st.Name, strings.Join(st.Inputs, ","), strings.Join(st.Outputs, ","), len(st.Tasks))
	}

	text, words := newTextGen(1).sentences(o.sentences)
	truth := make(map[string]int64)
	for _, s := range text {
		for _, w := range strings.Fields(s) {
			truth[w] += int64(o.repeat)
		}
	}
	fmt.Fprintf(out, "feeding %d sentences (%d words, %s) x %d\n\n", len(text), words, humanBytes(textBytes(text)), o.repeat)

	// --duration bounds the counting, not the building and deploying.
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	counts, err := watchCounts(ctx, node.Addr())
	if err != nil {
		return err
	}
	defer counts.close()
	feedCtx, stopFeed := context.WithCancel(ctx)
	feed := feedSentences(feedCtx, node.Addr(), text, o.repeat)
	defer func() { stopFeed(); <-feed.done }()

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	want := int64(len(text) * o.repeat)
	stopped := ""
	for done := false; !done; {
		select {
		case <-ctx.Done():
			stopped = "stopped early: " + context.Cause(ctx).Error()
			done = true
		case <-tick.C:
		}
		p := demoProgress(node.jobs, split.spec.Name, count.spec.Name)
		fmt.Fprintf(out, "%4.0fs  sentences %d/%d  split %d in, %d out  count %d in, %d out  top: %s\n",
			time.Since(start).Seconds(), feed.produced.Load(), want, p.splitIn, p.splitOut, p.countIn, p.countOut, topWords(counts.snapshot(), 5))
		if err := feed.err(); err != nil {
			return err
		}
		// Done when every sentence is produced and every stage has taken
		// in all its predecessor put out, and the watcher has read all
		// counts; comparing with the truth happens after.
		if feed.produced.Load() == want && p.splitIn >= uint64(want) && p.countIn >= p.splitOut && counts.read() >= int64(p.countOut) {
			done = true
		}
	}
	got := counts.snapshot()
	fmt.Fprintf(out, "\ntop 20 of %d distinct words after %s:\n", len(got), time.Since(start).Round(100*time.Millisecond))
	writeTop(out, got, truth, 20)
	bad := 0
	for w, n := range truth {
		if got[w] != n {
			bad++
		}
	}
	switch {
	case stopped != "":
		fmt.Fprintln(out, stopped)
	case bad == 0 && len(got) == len(truth):
		fmt.Fprintf(out, "all %d counts equal those computed directly from the text\n", len(truth))
	default:
		fmt.Fprintf(out, "%d of %d counts differ from those computed directly from the text (at-least-once: a task restarted and replayed records?)\n", bad, len(truth))
	}
	return nil
}

func textBytes(text []string) int64 {
	var n int64
	for _, s := range text {
		n += int64(len(s))
	}
	return n
}

type progress struct{ splitIn, splitOut, countIn, countOut uint64 }

func demoProgress(m *host.Manager, split, count string) progress {
	var p progress
	if st, err := m.Status(split); err == nil {
		t := totals(st)
		p.splitIn, p.splitOut = t.in, t.out
	}
	if st, err := m.Status(count); err == nil {
		t := totals(st)
		p.countIn, p.countOut = t.in, t.out
	}
	return p
}

// feeder produces the text in the background; done is closed when it
// has stopped.
type feeder struct {
	produced atomic.Int64
	done     chan struct{}
	mu       sync.Mutex
	failed   error
}

func (f *feeder) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func feedSentences(ctx context.Context, addr string, text []string, repeat int) *feeder {
	f := &feeder{done: make(chan struct{})}
	fail := func(err error) {
		f.mu.Lock()
		if f.failed == nil {
			f.failed = fmt.Errorf("feeding %s: %w", sentencesTopic, err)
		}
		f.mu.Unlock()
	}
	go func() {
		defer close(f.done)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(sentencesTopic), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			fail(err)
			return
		}
		defer cl.Close()
		for r := 0; r < repeat && ctx.Err() == nil; r++ {
			for _, s := range text {
				cl.Produce(ctx, &kgo.Record{Value: []byte(s)}, func(_ *kgo.Record, err error) {
					if err != nil {
						if ctx.Err() == nil {
							fail(err)
						}
						return
					}
					f.produced.Add(1)
				})
			}
		}
		cl.Flush(ctx)
	}()
	return f
}

// countWatcher reads word-counts from the start and keeps the latest count
// per word, as any consumer of a compacted count topic would.
type countWatcher struct {
	cl     *kgo.Client
	mu     sync.Mutex
	counts map[string]int64
	n      atomic.Int64
	done   chan struct{}
	cancel context.CancelFunc
}

func watchCounts(ctx context.Context, addr string) (*countWatcher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(wordCountsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &countWatcher{cl: cl, counts: make(map[string]int64), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			w.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if n, err := strconv.ParseInt(string(r.Value), 10, 64); err == nil {
					w.counts[string(r.Key)] = n
				}
				w.n.Add(1)
			})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *countWatcher) read() int64 { return w.n.Load() }

func (w *countWatcher) snapshot() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]int64, len(w.counts))
	for k, v := range w.counts {
		m[k] = v
	}
	return m
}

func (w *countWatcher) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

type wordCount struct {
	word  string
	count int64
}

func sortedCounts(m map[string]int64) []wordCount {
	s := make([]wordCount, 0, len(m))
	for w, n := range m {
		s = append(s, wordCount{w, n})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].count != s[j].count {
			return s[i].count > s[j].count
		}
		return s[i].word < s[j].word
	})
	return s
}

func topWords(m map[string]int64, n int) string {
	s := sortedCounts(m)
	parts := make([]string, 0, n)
	for i := 0; i < n && i < len(s); i++ {
		parts = append(parts, fmt.Sprintf("%s=%d", s[i].word, s[i].count))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func writeTop(w io.Writer, got, truth map[string]int64, n int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rank\tword\tcount\texpected\t")
	for i, wc := range sortedCounts(got) {
		if i == n {
			break
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t\n", i+1, wc.word, wc.count, truth[wc.word])
	}
	tw.Flush()
}
