package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/internal/bench"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

type pipelineOptions struct {
	caseName   string
	records    int64
	recordSize int
	partitions int32
	flush      string
	flushMode  storage.FlushMode
	dataDir    string
	timeout    time.Duration
	cpuProfile string
	vocabulary int
	lang       string
	runtime    string

	builds map[string]demoJob // by job file and language
}

func newBenchPipelineCmd() *cobra.Command {
	o := &pipelineOptions{}
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Measure stream processing: a pass-through operator and the word-count pair",
		Long: `Run Wasm jobs on a node in this process (data in a temporary directory under
--data-dir; --brokers is ignored) and report how fast they process, in one
table: a row per case, operator language (--lang: the example built from
examples/CASE/LANG) and WebAssembly runtime (--runtime), each on a fresh node.

  passthrough: --records records of --record-size bytes are written into the
      input topic of examples/passthrough (--partitions partitions), then the
      job processes them into its output topic.
  wordcount:   generated sentences totalling about --records words are written
      into "sentences", then split (sentences -> words, keyed by word) and count
      (words -> word-counts, with state) process them.

What is timed: from starting the jobs until the last output is in: for
passthrough, until the output topic's high watermark holds every record (so
the outputs are appended and, under --flush sync, fsynced); for wordcount,
until count's tasks have consumed every word split wrote and their outputs
are in word-counts. Not timed, and
reported separately: building the operators, compiling the modules (each job
is deployed, so compiled and initialized, then stopped before its input is
written), and writing the input (straight into the partitions, without the
Kafka protocol). Checkpoints (every commit interval) run during the timed
phase as they would in production.

Every row is verified, untimed, after its timed phase: for passthrough, each
output partition holds as many records as its input partition and sampled
records (the first, middle and last of each partition) equal the input's
(key, value, headers, timestamp); for wordcount, the latest count of every
word equals its occurrences in the input. A row that fails to run or to
verify says so in the table and the command exits non-zero after printing it.

Per-stage figures come from the jobs' status: records in and out, and when
each stage had taken in all its input.`,
		Example: `  sluice bench pipeline
  sluice bench pipeline --lang all --runtime all
  sluice bench pipeline --case wordcount --records 5000000 --cpuprofile wc.pprof`,
		Args: exactArgs(),
		RunE: o.runE(o.validate, func(ctx context.Context, w io.Writer) error { return runPipelineBench(ctx, w, o) }),
	}
	f := cmd.Flags()
	f.StringVar(&o.caseName, "case", "all", "passthrough, wordcount or all")
	f.Int64Var(&o.records, "records", 2_000_000, "records for passthrough; words (approximately) for wordcount")
	f.IntVar(&o.recordSize, "record-size", 100, "bytes of value per passthrough record")
	f.StringVar(&o.lang, "lang", "go", "language of the operators: go, c, rust, as or all (examples/CASE/LANG)")
	f.IntVar(&o.vocabulary, "vocabulary", 0, "distinct words of the wordcount text (Zipf-distributed made-up words); 0 uses the demo's word list")
	o.nodeFlags(f, "partitions of the input topics (so tasks per job)", 10*time.Minute,
		"write a CPU profile of each row's timed phase to FILE with the row's case, language and runtime added (x.pprof: x-passthrough-go-wazero.pprof, ...)")
	return cmd
}

// nodeFlags adds the flags of the node and the rows that bench pipeline
// and bench join share, with the help and default that differ.
func (o *pipelineOptions) nodeFlags(f *pflag.FlagSet, partitionsHelp string, timeout time.Duration, cpuProfileHelp string) {
	f.StringVar(&o.runtime, "runtime", runtimes.Default, "WebAssembly runtime of the jobs: "+strings.Join(runtimes.Known, ", ")+" or all (every one built into this binary)")
	f.Int32Var(&o.partitions, "partitions", 4, partitionsHelp)
	f.StringVar(&o.flush, "flush", "sync", "the node's flush policy: sync, interval or os")
	f.StringVar(&o.dataDir, "data-dir", os.TempDir(), "parent directory of the node's temporary data directory")
	f.DurationVar(&o.timeout, "timeout", timeout, "give up after this long")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", cpuProfileHelp)
}

// runE is the RunE of bench pipeline and bench join: a usage error unless
// validate accepts the flags, else run until it ends, --timeout passes or
// the process is interrupted.
func (o *pipelineOptions) runE(validate func() error, run func(context.Context, io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := validate(); err != nil {
			return usageError{err}
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		return run(ctx, cmd.OutOrStdout())
	}
}

func (o *pipelineOptions) validate() error {
	switch o.caseName {
	case "passthrough", "wordcount", "all":
	default:
		return fmt.Errorf("--case %q: want passthrough, wordcount or all", o.caseName)
	}
	switch {
	case o.records <= 0:
		return fmt.Errorf("--records %d: must be positive", o.records)
	case o.recordSize < 0:
		return fmt.Errorf("--record-size %d: must not be negative", o.recordSize)
	case !slices.Contains([]string{"go", "c", "rust", "as", "all"}, o.lang):
		return fmt.Errorf("--lang %q: want go, c, rust, as or all", o.lang)
	case o.vocabulary < 0 || o.vocabulary == 1:
		return fmt.Errorf("--vocabulary %d: must be 0 (the demo's words) or at least 2", o.vocabulary)
	}
	return o.validateNode()
}

// validateNode checks the flags of the node and the rows that bench
// pipeline and bench join share (--partitions, --runtime, --flush) and
// sets flushMode.
func (o *pipelineOptions) validateNode() error {
	if o.partitions <= 0 || o.partitions > broker.MaxPartitions {
		return fmt.Errorf("--partitions %d: must be in 1..%d", o.partitions, broker.MaxPartitions)
	}
	if o.runtime != "all" {
		// A runtime left out of this build fails here, before anything
		// is built, with runtimes' explanation of what to rebuild.
		if err := runtimes.Check(o.runtime); err != nil {
			return fmt.Errorf("--runtime: %w", err)
		}
	}
	m, err := broker.ParseFlushMode(o.flush)
	if err != nil {
		return fmt.Errorf("--flush: %w", err)
	}
	o.flushMode = m
	return nil
}

// stageResult is one job's figures in a timed run.
type stageResult struct {
	job        string
	in, out    uint64
	inputDone  time.Duration // when the job had consumed all its input
	restarts   int
	lastErrors []string
}

// pipelineResult is one measured row: a case run by operators in one
// language on one runtime.
type pipelineResult struct {
	benchRow
	unit    string // what records counts: "records" or "words"
	records int64
	bytes   int64 // input payload bytes
	elapsed time.Duration
	stages  []stageResult
}

// benchRow is what every row of bench pipeline and bench join has: the
// case, the operators' language and the runtime, what the untimed check
// found, and why the row failed (to run or to verify), nil if it did not.
type benchRow struct {
	name          string // the case
	lang, runtime string
	verified      string
	err           error
}

// label names the row in profiles' file names and messages.
func (r *benchRow) label() string { return r.name + "-" + r.lang + "-" + r.runtime }

func (r *benchRow) row() *benchRow { return r }

// benchCase is one case of a bench command: run measures one row of it.
type benchCase[R any] struct {
	name string
	run  func(context.Context, io.Writer, *R) error
}

// runBenchRows runs a bench command's rows: each case that --case selects,
// in order, for each language (--lang, or allLangs for "all") and each
// runtime (--runtime, or every one built in for "all"), each row under a
// heading. rowDone, unless nil, prints a row that ran. Then table prints
// the rows' table; the error says whether the run was stopped or rows
// failed.
func runBenchRows[R any, P interface {
	*R
	row() *benchRow
}](ctx context.Context, w io.Writer, o *pipelineOptions, allLangs []string, cases []benchCase[R], rowDone func(io.Writer, *R), table func(io.Writer, []R)) error {
	langs := []string{o.lang}
	if o.lang == "all" {
		langs = allLangs
	}
	rts := []string{o.runtime}
	if o.runtime == "all" {
		rts = runtimes.Available()
	}
	var results []R
	var failed []string
rows:
	for _, c := range cases {
		if o.caseName != c.name && o.caseName != "all" {
			continue
		}
		for _, lang := range langs {
			for _, rt := range rts {
				var r R
				row := P(&r).row()
				row.name, row.lang, row.runtime = c.name, lang, rt
				fmt.Fprintf(w, "\n== %s, %s operators, %s runtime\n", c.name, lang, rt)
				if row.err = c.run(ctx, w, &r); row.err != nil {
					// The other rows still run: one language's or
					// runtime's failure is a result, not the end of the
					// comparison.
					fmt.Fprintf(w, "%s: %v\n", row.label(), row.err)
					failed = append(failed, row.label())
				} else if rowDone != nil {
					rowDone(w, &r)
				}
				results = append(results, r)
				if ctx.Err() != nil {
					// Timed out or interrupted: the rows so far are
					// still worth a table.
					break rows
				}
			}
		}
	}
	fmt.Fprintln(w)
	table(w, results)
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("stopped after %d rows: %w", len(results), err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d rows failed: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	return nil
}

func runPipelineBench(ctx context.Context, w io.Writer, o *pipelineOptions) error {
	fmt.Fprintf(w, "bench pipeline: embedded node (flush=%s), %d partitions per input topic, GOMAXPROCS=%d\n", o.flush, o.partitions, runtime.GOMAXPROCS(0))
	return runBenchRows(ctx, w, o, []string{"go", "c", "rust", "as"}, []benchCase[pipelineResult]{
		{"passthrough", o.passthrough}, {"wordcount", o.wordcount},
	}, nil, writePipelineTable)
}

// benchNode starts a fresh node for one case, so cases do not share
// caches or disk state.
func (o *pipelineOptions) benchNode(ctx context.Context) (*processingNode, func(), error) {
	n, tmp, err := o.startBenchNode(ctx, "sluice-bench-pipeline-")
	if err != nil {
		return nil, nil, err
	}
	return n, func() {
		if err := n.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "sluice: closing the embedded node: %v\n", err)
		}
		os.RemoveAll(tmp)
	}, nil
}

// startBenchNode starts a node (logging warnings and errors) with its data
// in a new temporary directory under --data-dir, named with prefix, and
// returns it with the directory, which the caller removes after closing
// the node.
func (o *pipelineOptions) startBenchNode(ctx context.Context, prefix string) (*processingNode, string, error) {
	tmp, err := os.MkdirTemp(o.dataDir, prefix)
	if err != nil {
		return nil, "", err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := startProcessingNode(ctx, tmp, o.flushMode, log)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, "", err
	}
	return n, tmp, nil
}

// deployStopped builds (once per run: rows on other runtimes reuse the
// module), deploys (compiling and initializing the module on runtime rt)
// and stops a job, so that starting it later times only processing.
func (o *pipelineOptions) deployStopped(ctx context.Context, w io.Writer, n *processingNode, dir, file, lang, rt string) (host.JobSpec, error) {
	key := filepath.Join(dir, file) + " " + lang
	job, ok := o.builds[key]
	if !ok {
		tmp, err := os.MkdirTemp("", "sluice-bench-build-")
		if err != nil {
			return host.JobSpec{}, err
		}
		defer os.RemoveAll(tmp)
		if job, err = loadExampleJobIn(ctx, w, dir, file, tmp, lang); err != nil {
			return host.JobSpec{}, err
		}
		if o.builds == nil {
			o.builds = map[string]demoJob{}
		}
		o.builds[key] = job
	}
	// The host opens the job's runtime when it first compiles for it.
	job.spec.Runtime = rt
	start := time.Now()
	if _, err := n.jobs.Deploy(ctx, job.spec, job.module.Bytes); err != nil {
		return job.spec, fmt.Errorf("deploy %s: %w", job.spec.Name, err)
	}
	if err := n.jobs.Stop(ctx, job.spec.Name); err != nil {
		return job.spec, fmt.Errorf("stop %s: %w", job.spec.Name, err)
	}
	fmt.Fprintf(w, "deployed %s (compile, init, start, stop) in %s\n", job.spec.Name, time.Since(start).Round(time.Millisecond))
	return job.spec, nil
}

// passthrough runs the pass-through job built from
// examples/passthrough/LANG and verifies its output.
func (o *pipelineOptions) passthrough(ctx context.Context, w io.Writer, res *pipelineResult) error {
	res.unit, res.records, res.bytes = "records", o.records, o.records*int64(o.recordSize)
	dir, err := findExample("passthrough")
	if err != nil {
		return err
	}
	n, done, err := o.benchNode(ctx)
	if err != nil {
		return err
	}
	defer done()
	spec, err := host.LoadJobFile(filepath.Join(dir, "passthrough.yaml"))
	if err != nil {
		return err
	}
	if len(spec.Inputs) != 1 || len(spec.Outputs) != 1 {
		return fmt.Errorf("%s: want one input and one output, have %d and %d", filepath.Join(dir, "passthrough.yaml"), len(spec.Inputs), len(spec.Outputs))
	}
	in, out := spec.Inputs[0], spec.Outputs[0].Topic
	if err := n.createTopic(in, o.partitions); err != nil {
		return err
	}
	if spec, err = o.deployStopped(ctx, w, n, dir, "passthrough.yaml", res.lang, res.runtime); err != nil {
		return err
	}

	// Each value starts with its partition and index, so that the
	// verification can tell one record from another; the rest is the
	// same payload for all. The builder copies the value, so one buffer
	// per partition serves all its records.
	payload := bench.Payload(o.recordSize)
	values := make([][]byte, o.partitions)
	for p := range values {
		values[p] = bytes.Clone(payload)
	}
	start := time.Now()
	if err := n.appendRecords(in, spread(o.records, o.partitions), 1000, func(p int32, i int64) ([]byte, []byte) {
		v := values[p]
		var id [8]byte
		binary.LittleEndian.PutUint64(id[:], uint64(p)<<40|uint64(i))
		copy(v, id[:])
		return nil, v
	}); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(w, "wrote %d records of %d bytes into %s in %s (%s records/s; not timed)\n",
		o.records, o.recordSize, in, el.Round(time.Millisecond), commas(float64(o.records)/el.Seconds()))

	stages, elapsed, err := o.timed(ctx, w, res.label(), n, []string{spec.Name}, func() (bool, error) {
		hw, err := n.highWatermarks(out)
		return hw >= o.records, err
	}, map[string]uint64{spec.Name: uint64(o.records)})
	if err != nil {
		return err // stages were not all gathered: none are shown
	}
	res.elapsed, res.stages = elapsed, stages
	res.verified, err = verifyPassthrough(n, in, out)
	return err
}

// passthroughSample is how many records verifyPassthrough compares at each
// of the start, the middle and the end of every partition.
const passthroughSample = 100

// verifyPassthrough checks (untimed) that the job wrote every input record
// once and unchanged. With null keys, the host sends each task's outputs to
// its own partition, so output partition p must be input partition p
// record for record: it compares their record counts, and the key, value,
// headers and timestamp of the records at the start, middle and end of
// each partition (comparing all would take longer than the timed phase).
func verifyPassthrough(n *processingNode, in, out string) (string, error) {
	info, ok := n.b.Topic(in)
	if !ok {
		return "", fmt.Errorf("verifying: topic %s does not exist", in)
	}
	var total, compared int64
	for p := int32(0); p < info.Partitions; p++ {
		ip, err := n.b.Partition(in, p)
		if err != nil {
			return "", err
		}
		op, err := n.b.Partition(out, p)
		if err != nil {
			return "", err
		}
		count := ip.HighWatermark()
		if got := op.HighWatermark(); got != count {
			return "", fmt.Errorf("verifying %s-%d: %d records, its input %s-%d has %d", out, p, got, in, p, count)
		}
		total += count
		next := int64(0) // the windows do not overlap
		for _, at := range []int64{0, count/2 - passthroughSample/2, count - passthroughSample} {
			at = max(at, next)
			to := min(at+passthroughSample, count)
			if at >= to {
				continue
			}
			next = to
			want, err := n.readRecords(in, p, at, to)
			if err != nil {
				return "", err
			}
			got, err := n.readRecords(out, p, at, to)
			if err != nil {
				return "", err
			}
			if len(got) != len(want) {
				return "", fmt.Errorf("verifying %s-%d: %d records at offsets %d to %d, want %d", out, p, len(got), at, to, len(want))
			}
			for i := range want {
				if g, w := recordString(&got[i]), recordString(&want[i]); g != w {
					return "", fmt.Errorf("verifying %s-%d: offset %d is %s, its input is %s", out, p, want[i].Offset, g, w)
				}
			}
			compared += int64(len(want))
		}
	}
	return fmt.Sprintf("ok: %s out, %s sampled equal", commas(float64(total)), commas(float64(compared))), nil
}

// recordString shows what a pass-through must keep of a record: the
// offset may differ, nothing else.
func recordString(r *batch.Record) string {
	return fmt.Sprintf("ts=%d key=%s value=%s headers=%s", r.Timestamp, nullableString(r.Key), nullableString(r.Value), fmt.Sprint(r.Headers))
}

func nullableString(b []byte) string {
	if b == nil {
		return "null"
	}
	if len(b) > 24 {
		return fmt.Sprintf("%q...(%d bytes, sha256 %x)", b[:24], len(b), sha256.Sum256(b))
	}
	return fmt.Sprintf("%q", b)
}

// wordcount runs the word count pair built from examples/wordcount/LANG
// and verifies the counts.
func (o *pipelineOptions) wordcount(ctx context.Context, w io.Writer, res *pipelineResult) error {
	res.unit = "words"
	dir, err := findExample("wordcount")
	if err != nil {
		return err
	}
	n, done, err := o.benchNode(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := n.createTopic(sentencesTopic, o.partitions); err != nil {
		return err
	}
	split, err := o.deployStopped(ctx, w, n, dir, "split.yaml", res.lang, res.runtime)
	if err != nil {
		return err
	}
	count, err := o.deployStopped(ctx, w, n, dir, "count.yaml", res.lang, res.runtime)
	if err != nil {
		return err
	}

	// Sentences are generated up front so that generation is not timed
	// as writing, and spread over the partitions round robin.
	gen := newTextGen(1)
	if o.vocabulary > 0 {
		gen = newTextGenWords(1, syntheticWords(o.vocabulary))
	}
	perPartition := make([][][]byte, o.partitions)
	var sentences int64
	for p := 0; res.records < o.records; p = (p + 1) % int(o.partitions) {
		s, words := gen.appendSentence(nil)
		perPartition[p] = append(perPartition[p], s)
		res.records += int64(words)
		res.bytes += int64(len(s))
		sentences++
	}
	counts := make([]int64, o.partitions)
	for p := range counts {
		counts[p] = int64(len(perPartition[p]))
	}
	start := time.Now()
	if err := n.appendRecords(sentencesTopic, counts, 500, func(p int32, i int64) ([]byte, []byte) { return nil, perPartition[p][i] }); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(w, "wrote %d sentences (%d words, %s) into %s in %s (not timed)\n",
		sentences, res.records, humanBytes(res.bytes), sentencesTopic, el.Round(time.Millisecond))

	wordsTopic := split.Outputs[0].Topic
	stages, elapsed, err := o.timed(ctx, w, res.label(), n, []string{split.Name, count.Name}, func() (bool, error) {
		// Every word is in words once split has consumed every sentence
		// and its outputs are appended; count is done when its positions
		// (next offsets to process) add up to all of them.
		hw, err := n.highWatermarks(wordsTopic)
		if err != nil || hw < res.records {
			return false, err
		}
		st, err := n.jobs.Status(count.Name)
		if err != nil {
			return false, err
		}
		var pos int64
		for _, t := range st.Tasks {
			for _, in := range t.Inputs {
				pos += in.Position
			}
		}
		if pos < res.records {
			return false, nil
		}
		// A position moves on when a batch is processed, before its
		// outputs are appended (under --flush sync, fsynced): count's
		// last outputs are in when the output topic holds as many
		// records as count says it wrote.
		hw, err = n.highWatermarks(count.Outputs[0].Topic)
		return hw >= int64(totals(st).out), err
	}, map[string]uint64{split.Name: uint64(sentences), count.Name: uint64(res.records)})
	if err != nil {
		return err // stages were not all gathered: none are shown
	}
	res.elapsed, res.stages = elapsed, stages
	res.verified, err = verifyCounts(w, n, count.Outputs[0].Topic, perPartition)
	return err
}

// verifyCounts checks (untimed) that the latest count of every word in the
// output topic is the word's number of occurrences in the input, so that a
// fast figure is also a right one.
func verifyCounts(w io.Writer, n *processingNode, topic string, sentences [][][]byte) (string, error) {
	want := map[string]int64{}
	for _, part := range sentences {
		for _, s := range part {
			for _, word := range strings.Fields(string(s)) {
				want[word]++
			}
		}
	}
	got, err := n.latestValues(topic)
	if err != nil {
		return "", fmt.Errorf("verifying %s: %w", topic, err)
	}
	if len(got) != len(want) {
		return "", fmt.Errorf("verifying %s: %d distinct words counted, the input has %d", topic, len(got), len(want))
	}
	for word, c := range want {
		if got[word] != strconv.FormatInt(c, 10) {
			return "", fmt.Errorf("verifying %s: %q counted %q, the input has it %d times", topic, word, got[word], c)
		}
	}
	fmt.Fprintf(w, "verified: the latest count in %s of each of the %d distinct words matches the input\n", topic, len(want))
	return fmt.Sprintf("ok: %s words' counts", commas(float64(len(want)))), nil
}

// timed starts the jobs, polls until finished reports true, and returns
// the elapsed time and each job's figures. inputs is each job's total
// input, to note when each stage had consumed it.
func (o *pipelineOptions) timed(ctx context.Context, w io.Writer, label string, n *processingNode, jobs []string, finished func() (bool, error), inputs map[string]uint64) ([]stageResult, time.Duration, error) {
	stages := make([]stageResult, len(jobs))
	if o.cpuProfile != "" {
		// One profile per row: FILE.pprof becomes FILE-<label>.pprof.
		ext := filepath.Ext(o.cpuProfile)
		path := strings.TrimSuffix(o.cpuProfile, ext) + "-" + label + ext
		f, err := os.Create(path)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, 0, err
		}
		defer pprof.StopCPUProfile()
		defer fmt.Fprintf(w, "CPU profile of the timed %s phase: %s\n", label, path)
	}
	start := time.Now()
	for i, j := range jobs {
		stages[i].job = j
		if err := n.jobs.Start(ctx, j); err != nil {
			return nil, 0, fmt.Errorf("start %s: %w", j, err)
		}
	}
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	lastReport := start
	for {
		ok, err := finished()
		now := time.Since(start)
		if err != nil {
			return stages, now, err
		}
		for i := range stages {
			if stages[i].inputDone == 0 {
				if st, err := n.jobs.Status(stages[i].job); err == nil && totals(st).in >= inputs[stages[i].job] {
					stages[i].inputDone = now
				}
			}
		}
		if ok {
			break
		}
		if time.Since(lastReport) > 10*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "... %s: %s\n", now.Round(time.Second), stageSummary(n, jobs))
		}
		select {
		case <-ctx.Done():
			return stages, now, fmt.Errorf("not finished after %s (%s): %w", now.Round(time.Millisecond), stageSummary(n, jobs), context.Cause(ctx))
		case <-poll.C:
		}
	}
	elapsed := time.Since(start)
	for i := range stages {
		st, err := n.jobs.Status(stages[i].job)
		if err != nil {
			return stages, elapsed, err
		}
		t := totals(st)
		stages[i].in, stages[i].out = t.in, t.out
		for _, task := range st.Tasks {
			stages[i].restarts += task.Restarts
			if task.LastError != "" {
				stages[i].lastErrors = append(stages[i].lastErrors, fmt.Sprintf("task %d: %s", task.Partition, oneLine(task.LastError)))
			}
		}
		if stages[i].inputDone == 0 {
			stages[i].inputDone = elapsed
		}
	}
	return stages, elapsed, nil
}

func stageSummary(n *processingNode, jobs []string) string {
	var parts []string
	for _, j := range jobs {
		st, err := n.jobs.Status(j)
		if err != nil {
			parts = append(parts, j+": "+err.Error())
			continue
		}
		t := totals(st)
		parts = append(parts, fmt.Sprintf("%s %d in, %d out, lag %d", j, t.in, t.out, t.lag))
	}
	return strings.Join(parts, "; ")
}

func writePipelineTable(w io.Writer, results []pipelineResult) {
	fmt.Fprintln(w, "pipeline (timed: from starting the jobs until the last output is in; build, compile, input writing and verification excluded)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tlang\truntime\tinput\tseconds\tper second\tinput MB/s\tverified\t")
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\tFAILED (see above)\t\n", r.name, r.lang, r.runtime)
			continue
		}
		secs := r.elapsed.Seconds()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%.2f\t%s %s/s\t%.1f\t%s\t\n", r.name, r.lang, r.runtime, commas(float64(r.records)), r.unit, secs,
			commas(float64(r.records)/secs), r.unit, float64(r.bytes)/1e6/secs, r.verified)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nstages (from the jobs' status)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tlang\truntime\tjob\trecords in\trecords out\tinput done after\tin records/s\trestarts\t")
	var errs []string
	for _, r := range results {
		for _, s := range r.stages {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2fs\t%s\t%d\t\n", r.name, r.lang, r.runtime, s.job, commas(float64(s.in)), commas(float64(s.out)),
				s.inputDone.Seconds(), commas(float64(s.in)/s.inputDone.Seconds()), s.restarts)
			for _, e := range s.lastErrors {
				errs = append(errs, r.label()+" "+s.job+" "+e)
			}
		}
	}
	tw.Flush()
	if len(errs) > 0 {
		fmt.Fprintln(w, "a task that fails restarts from its last checkpoint, so its records in include replayed records; last errors:")
	}
	for _, e := range errs {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// spread divides n records over p partitions as evenly as possible.
func spread(n int64, p int32) []int64 {
	out := make([]int64, p)
	for i := range out {
		out[i] = n / int64(p)
		if int64(i) < n%int64(p) {
			out[i]++
		}
	}
	return out
}

// commas formats n rounded to an integer with thousands separators.
func commas(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
