package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/internal/kafkahash"
)

// joinOptions are bench join's settings. The embedded pipelineOptions
// bring the flags both commands share and their deployment and timing.
type joinOptions struct {
	pipelineOptions
	tableRows   int64
	openWindows int64
}

func newBenchJoinCmd() *cobra.Command {
	o := &joinOptions{}
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Measure joins: a stream-table join (enrich) and a windowed stream-stream join (attribution)",
		Long: `Run the join examples on a node in this process (data in a temporary directory
under --data-dir; --brokers is ignored) and report how fast they process and
how much state they keep, in one table: a row per case, operator language
(--lang: the example built from examples/CASE/LANG) and WebAssembly runtime
(--runtime), each on a fresh node.

  enrich:      --table-rows profiles (users u0..uN-1, small JSON values,
      timestamp 0) are written into the table topic of examples/enrich, placed
      by Kafka's partitioner (murmur2 of the key), then --records clicks for
      random users (1% of them users without a profile), with increasing
      timestamps, into its input. Starting the job bootstraps the table (every
      profile is older than every click, so the tasks apply the whole table
      before they enrich a click), then enriches the clicks.
  attribution: --open-windows impressions within one window of each other,
      never clicked, then --records records mixing impressions and clicks
      (two impressions, then a click on an earlier impression, half of the
      impressions being clicked about half a window after they were shown),
      with increasing timestamps paced so that the tasks hold about
      --open-windows unexpired impressions throughout while windows keep
      opening and expiring (each ad id is shown once, so each click makes
      exactly one attribution).

What is timed: from starting the job until the last output is in (the output
topics' high watermarks hold every record the job says it wrote). For enrich
that is split in two phases by the tasks' table positions: the bootstrap
(until every task's table position reaches the table's end) and the clicks.
For attribution, the open windows are written and consumed first, and the
job stopped (a checkpoint), untimed; the timed phase is the job's restart
with them in state and its processing of the mixed records. The table
shows the clicks and the mixed records; the phases table all phases. Not
timed: building and compiling the operators, generating and writing the
input (straight into the partitions, with the generated timestamps), and
verifying.

Every row is verified, untimed, against a model of the generated data: for
enrich, every output record, in order, is the click of the same offset with
its key and timestamp and the value {"click":CLICK,"profile":PROFILE} (null
for users without one); for attribution, each attribution is the pair of its
ad's impression and click (each clicked impression attributed exactly once,
so attributed == clicks), the unmatched impressions are exactly the
unclicked ones whose window and lateness had passed by their partition's
final stream time, and nothing is late.

State is measured after the timed phase and the job's stop (a final
checkpoint): the bytes of the tasks' state directories on disk (Pebble,
tables included), next to the table topic's bytes (enrich) or the state
stores' changelog topics' bytes (attribution).`,
		Example: `  sluice bench join
  sluice bench join --case enrich --table-rows 1000000 --records 1000000
  sluice bench join --lang all --runtime all --records 500000`,
		Args: exactArgs(),
		RunE: o.runE(o.validate, func(ctx context.Context, w io.Writer) error { return runJoinBench(ctx, w, o) }),
	}
	f := cmd.Flags()
	f.StringVar(&o.caseName, "case", "all", "enrich, attribution or all")
	f.Int64Var(&o.records, "records", 2_000_000, "clicks for enrich; mixed impressions and clicks for attribution")
	f.Int64Var(&o.tableRows, "table-rows", 1_000_000, "enrich: profiles in the table")
	f.Int64Var(&o.openWindows, "open-windows", 100_000, "attribution: unclicked impressions in state when the mixed records start (and held about that many throughout)")
	f.StringVar(&o.lang, "lang", "go", "language of the operators: go, c or all (examples/CASE/LANG)")
	o.nodeFlags(f, "partitions of the input and table topics (so tasks per job)", 20*time.Minute,
		"write a CPU profile of each row's timed phase to FILE with the row's case, language and runtime added")
	return cmd
}

func (o *joinOptions) validate() error {
	switch o.caseName {
	case "enrich", "attribution", "all":
	default:
		return fmt.Errorf("--case %q: want enrich, attribution or all", o.caseName)
	}
	switch {
	case o.records <= 0 || o.records > 1<<31:
		return fmt.Errorf("--records %d: must be in 1..%d", o.records, int64(1)<<31)
	case o.tableRows <= 0 || o.tableRows > 1<<31:
		return fmt.Errorf("--table-rows %d: must be in 1..%d", o.tableRows, int64(1)<<31)
	case o.openWindows < 2 || o.openWindows > 1<<30:
		return fmt.Errorf("--open-windows %d: must be in 2..%d", o.openWindows, int64(1)<<30)
	case !slices.Contains([]string{"go", "c", "all"}, o.lang):
		return fmt.Errorf("--lang %q: want go, c or all", o.lang)
	}
	return o.validateNode()
}

// joinPhase is one timed phase of a row.
type joinPhase struct {
	name    string // "bootstrap", "clicks", ...
	records int64
	unit    string // what records counts
	elapsed time.Duration
}

// joinResult is one measured row.
type joinResult struct {
	benchRow
	phases     []joinPhase // [0] warm-up (bootstrap, open windows), [1] the measured records
	total      time.Duration
	stateBytes int64 // the tasks' state directories after the run
	topicBytes int64 // the table topic (enrich) or the changelogs (attribution)
	topicWhat  string
	stages     []stageResult
}

func runJoinBench(ctx context.Context, w io.Writer, o *joinOptions) error {
	fmt.Fprintf(w, "bench join: embedded node (flush=%s), %d partitions per topic, GOMAXPROCS=%d\n", o.flush, o.partitions, runtime.GOMAXPROCS(0))
	return runBenchRows(ctx, w, &o.pipelineOptions, []string{"go", "c"}, []benchCase[joinResult]{
		{"enrich", o.enrich}, {"attribution", o.attribution},
	}, printJoinRow, writeJoinTable)
}

// printJoinRow prints a row as it ends, so that a run stopped later still
// shows it.
func printJoinRow(w io.Writer, r *joinResult) {
	for _, ph := range r.phases {
		fmt.Fprintf(w, "%s: %s %s in %s (%s %s/s)\n", ph.name, commas(float64(ph.records)), ph.unit,
			ph.elapsed.Round(time.Millisecond), commas(float64(ph.records)/ph.elapsed.Seconds()), ph.unit)
	}
	fmt.Fprintf(w, "state directories %s, %s %s; verified %s\n", humanBytes(r.stateBytes), r.topicWhat, humanBytes(r.topicBytes), r.verified)
}

// joinNode starts a fresh node for one row and returns it with the
// directory of its jobs' data (for measuring state on disk).
func (o *joinOptions) joinNode(ctx context.Context) (*processingNode, string, func(), error) {
	n, tmp, err := o.startBenchNode(ctx, "sluice-bench-join-")
	if err != nil {
		return nil, "", nil, err
	}
	// startProcessingNode gives the host DataDir tmp/host, whose jobs
	// live under jobs/<name>.
	return n, filepath.Join(tmp, "host", "jobs"), func() {
		// A task stuck in long operator calls (a run that timed out)
		// can hold up the node's close: give it a minute, then leave
		// it, so that an interrupted run still ends and cleans up.
		closed := make(chan error, 1)
		go func() { closed <- n.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				fmt.Fprintf(os.Stderr, "sluice: closing the embedded node: %v\n", err)
			}
		case <-time.After(time.Minute):
			fmt.Fprintf(os.Stderr, "sluice: the embedded node did not close within a minute; removing its data anyway\n")
		}
		os.RemoveAll(tmp)
	}, nil
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var sum int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			sum += info.Size()
		}
		return nil
	})
	return sum, err
}

// stopAndMeasure stops the job (each task checkpoints a last time) and
// measures its tasks' state directories.
func (o *joinOptions) stopAndMeasure(ctx context.Context, n *processingNode, jobsDir, job string, res *joinResult) error {
	if err := n.jobs.Stop(ctx, job); err != nil {
		return fmt.Errorf("stop %s: %w", job, err)
	}
	b, err := dirBytes(filepath.Join(jobsDir, job, "state"))
	if err != nil {
		return fmt.Errorf("measuring the state of %s: %w", job, err)
	}
	res.stateBytes = b
	return nil
}

// jobDiagnosis describes a job's tasks for a run that did not finish:
// their states, positions and last errors.
func jobDiagnosis(n *processingNode, job string) string {
	st, err := n.jobs.Status(job)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "job %s: %s %s", job, st.State, st.Error)
	for _, t := range st.Tasks {
		fmt.Fprintf(&b, "\n  task %d: %s, in %d, out %d, stream time %d, restarts %d", t.Partition, t.State, t.RecordsIn, t.RecordsOut, t.StreamTime, t.Restarts)
		for _, in := range t.Inputs {
			fmt.Fprintf(&b, "; %s %d/%d", in.Topic, in.Position, in.End)
		}
		for _, tb := range t.Tables {
			fmt.Fprintf(&b, "; table %s %d/%d (bootstrap end %d, applied %d)", tb.Topic, tb.Position, tb.End, tb.BootstrapEnd, tb.Applied)
		}
		if t.LastError != "" {
			fmt.Fprintf(&b, "; last error: %s", oneLine(t.LastError))
		}
	}
	return b.String()
}

// taskPositions are a job's positions: per partition, the sum of its
// stream inputs' positions (input in, or all for -1), and whether every
// task's first table has reached tableEnd[partition] (with tableEnd).
type taskPositions struct {
	input      []int64 // by partition
	tablesDone bool
}

func jobPositions(st host.JobStatus, partitions int32, in int, tableEnd []int64) taskPositions {
	tp := taskPositions{input: make([]int64, partitions), tablesDone: len(st.Tasks) == int(partitions)}
	for _, t := range st.Tasks {
		if t.Partition < 0 || t.Partition >= partitions {
			continue
		}
		for i, ip := range t.Inputs {
			if in < 0 || i == in {
				tp.input[t.Partition] += ip.Position
			}
		}
		if tableEnd != nil {
			if len(t.Tables) == 0 || t.Tables[0].Position < tableEnd[t.Partition] {
				tp.tablesDone = false
			}
		}
	}
	return tp
}

// ---------------------------------------------------------------------
// enrich

// enrichClick is a generated click: its index (which gives its timestamp
// and value) and its user.
type enrichClick struct {
	n    uint32
	user uint32
}

// enrichGen generates the enrich case's data: profile and click values
// are functions of the user's and the click's number.
type enrichGen struct {
	users   int64           // profiles u0..users-1
	table   [][]uint32      // users by partition, in offset order
	clicks  [][]enrichClick // by partition, in offset order
	clickTS func(n uint32) int64
}

var profileTiers = [...]string{"free", "silver", "gold"}

// appendProfile appends the profile of user u.
func appendProfile(dst []byte, u uint32) []byte {
	dst = append(dst, `{"user":"u`...)
	dst = strconv.AppendUint(dst, uint64(u), 10)
	dst = append(dst, `","tier":"`...)
	dst = append(dst, profileTiers[u%3]...)
	dst = append(dst, `","since":`...)
	dst = strconv.AppendUint(dst, 2015+uint64(u%10), 10)
	return append(dst, '}')
}

func appendClickValue(dst []byte, n uint32) []byte {
	dst = append(dst, `{"page":"/p/`...)
	dst = strconv.AppendUint(dst, uint64(n*7919%1000), 10)
	dst = append(dst, `","n":`...)
	dst = strconv.AppendUint(dst, uint64(n), 10)
	return append(dst, '}')
}

func appendUserKey(dst []byte, u uint32) []byte {
	dst = append(dst, 'u')
	return strconv.AppendUint(dst, uint64(u), 10)
}

func newEnrichGen(users, clicks int64, partitions int32) *enrichGen {
	g := &enrichGen{
		users:   users,
		table:   make([][]uint32, partitions),
		clicks:  make([][]enrichClick, partitions),
		clickTS: func(n uint32) int64 { return 1 + int64(n) },
	}
	// 1% of the clicks are for users without a profile: u<users>...
	known := users + users/100 + 1
	part := make([]int32, known) // partition by user
	var key []byte
	for u := int64(0); u < known; u++ {
		key = appendUserKey(key[:0], uint32(u))
		p := kafkahash.Partition(key, partitions)
		part[u] = p
		if u < users {
			g.table[p] = append(g.table[p], uint32(u))
		}
	}
	for p := range g.clicks {
		g.clicks[p] = make([]enrichClick, 0, clicks/int64(partitions)+clicks/int64(partitions)/8+16)
	}
	rng := rand.New(rand.NewPCG(1, 0x656e72696368))
	for n := int64(0); n < clicks; n++ {
		u := uint32(rng.Int64N(known))
		p := part[u]
		g.clicks[p] = append(g.clicks[p], enrichClick{n: uint32(n), user: u})
	}
	return g
}

// enrich runs examples/enrich on a table of --table-rows profiles and
// --records clicks.
func (o *joinOptions) enrich(ctx context.Context, w io.Writer, res *joinResult) error {
	dir, file, spec, err := loadExampleSpec("enrich")
	if err != nil {
		return err
	}
	if len(spec.Inputs) != 1 || len(spec.Tables) != 1 || len(spec.Outputs) < 1 {
		return fmt.Errorf("%s: want one input, one table and an output, have %d, %d and %d", filepath.Join(dir, file), len(spec.Inputs), len(spec.Tables), len(spec.Outputs))
	}
	clicksTopic, tableTopic, out := spec.Inputs[0], spec.Tables[0].Topic, spec.Outputs[0].Topic
	n, jobsDir, done, err := o.joinNode(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := n.createTopic(clicksTopic, o.partitions); err != nil {
		return err
	}
	if _, err := n.b.CreateTopic(tableTopic, o.partitions, map[string]string{"cleanup.policy": "compact"}); err != nil {
		return err
	}
	if spec, err = o.deployStopped(ctx, w, n, dir, file, res.lang, res.runtime); err != nil {
		return err
	}

	start := time.Now()
	g := newEnrichGen(o.tableRows, o.records, o.partitions)
	fmt.Fprintf(w, "generated %d profiles and %d clicks in %s (not timed)\n", o.tableRows, o.records, time.Since(start).Round(time.Millisecond))
	tableCounts := make([]int64, o.partitions)
	clickCounts := make([]int64, o.partitions)
	for p := range tableCounts {
		tableCounts[p], clickCounts[p] = int64(len(g.table[p])), int64(len(g.clicks[p]))
	}
	keys, values := make([][]byte, o.partitions), make([][]byte, o.partitions)
	start = time.Now()
	if err := n.appendTimed(tableTopic, tableCounts, 1000, func(p int32, i int64) ([]byte, []byte, int64) {
		u := g.table[p][i]
		keys[p] = appendUserKey(keys[p][:0], u)
		values[p] = appendProfile(values[p][:0], u)
		return keys[p], values[p], 0
	}); err != nil {
		return err
	}
	if err := n.appendTimed(clicksTopic, clickCounts, 1000, func(p int32, i int64) ([]byte, []byte, int64) {
		c := g.clicks[p][i]
		keys[p] = appendUserKey(keys[p][:0], c.user)
		values[p] = appendClickValue(values[p][:0], c.n)
		return keys[p], values[p], g.clickTS(c.n)
	}); err != nil {
		return err
	}
	el := time.Since(start)
	if res.topicBytes, err = n.topicBytes(tableTopic); err != nil {
		return err
	}
	res.topicWhat = "table topic " + tableTopic
	fmt.Fprintf(w, "wrote %d profiles (%s) into %s and %d clicks into %s in %s (not timed)\n",
		o.tableRows, humanBytes(res.topicBytes), tableTopic, o.records, clicksTopic, el.Round(time.Millisecond))

	var bootstrapped time.Duration
	t0 := time.Now()
	stages, elapsed, err := o.timed(ctx, w, res.label(), n, []string{spec.Name}, func() (bool, error) {
		if bootstrapped == 0 {
			st, err := n.jobs.Status(spec.Name)
			if err != nil {
				return false, err
			}
			if jobPositions(st, o.partitions, -1, tableCounts).tablesDone {
				bootstrapped = time.Since(t0)
			}
		}
		hw, err := n.highWatermarks(out)
		return bootstrapped != 0 && hw >= o.records, err
	}, map[string]uint64{spec.Name: uint64(o.records)})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, jobDiagnosis(n, spec.Name))
	}
	res.total, res.stages = elapsed, stages
	res.phases = []joinPhase{
		{"bootstrap", o.tableRows, "rows", bootstrapped},
		{"clicks", o.records, "clicks", elapsed - bootstrapped},
	}
	if err := o.stopAndMeasure(ctx, n, jobsDir, spec.Name, res); err != nil {
		return err
	}
	res.verified, err = verifyEnrich(n, out, g)
	return err
}

// verifyEnrich checks every output record: output partition p holds, in
// order, the clicks of input partition p (the output is keyed by user, as
// the input), each with its key, timestamp and the value the job must
// make of it.
func verifyEnrich(n *processingNode, out string, g *enrichGen) (string, error) {
	var (
		want     []byte
		key      []byte
		total    int64
		profiles int64
	)
	for p := range g.clicks {
		clicks := g.clicks[p]
		var i int
		var bad error
		err := n.eachRecord(out, int32(p), 0, func(rec *batch.Record) bool {
			if i >= len(clicks) {
				bad = fmt.Errorf("verifying %s-%d: more than the %d records of the input partition", out, p, len(clicks))
				return false
			}
			c := clicks[i]
			want = append(want[:0], `{"click":`...)
			want = appendClickValue(want, c.n)
			want = append(want, `,"profile":`...)
			if int64(c.user) < g.users {
				want = appendProfile(want, c.user)
				profiles++
			} else {
				want = append(want, "null"...)
			}
			want = append(want, '}')
			key = appendUserKey(key[:0], c.user)
			if !bytes.Equal(rec.Value, want) || !bytes.Equal(rec.Key, key) || rec.Timestamp != g.clickTS(c.n) {
				bad = fmt.Errorf("verifying %s-%d: offset %d is ts=%d key=%s value=%s, want ts=%d key=u%d value=%s",
					out, p, rec.Offset, rec.Timestamp, nullableString(rec.Key), nullableString(rec.Value), g.clickTS(c.n), c.user, want)
				return false
			}
			i++
			return true
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return "", err
		}
		if i != len(clicks) {
			return "", fmt.Errorf("verifying %s-%d: %d records, its input has %d clicks", out, p, i, len(clicks))
		}
		total += int64(i)
	}
	return fmt.Sprintf("ok: %s out == clicks, all equal (%s with a profile)", commas(float64(total)), commas(float64(profiles))), nil
}

// loadExampleSpec finds examples/name and loads its only job file,
// returning the example's directory, the job file's name and its spec.
func loadExampleSpec(name string) (dir, file string, spec host.JobSpec, err error) {
	if dir, err = findExample(name); err != nil {
		return "", "", host.JobSpec{}, err
	}
	if file, err = jobFileIn(dir); err != nil {
		return "", "", host.JobSpec{}, err
	}
	spec, err = host.LoadJobFile(filepath.Join(dir, file))
	return dir, file, spec, err
}

// jobFileIn returns the name of the only job file (*.yaml) in dir.
func jobFileIn(dir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return "", err
	}
	if len(m) != 1 {
		return "", fmt.Errorf("%s: want one job file (*.yaml), found %d", dir, len(m))
	}
	return filepath.Base(m[0]), nil
}

// ---------------------------------------------------------------------
// attribution

// attrClick is a generated click: its timestamp and the impression (so
// ad) it clicks.
type attrClick struct {
	ts  int64
	imp uint32
}

// attrGen is the attribution case's data. Impression k is ad "ad<k>" with
// value "i<k>"; a click on it has value "c<k>", so the attribution it
// makes is "i<k> c<k>".
type attrGen struct {
	window, lateness int64 // ms
	impTS            []int64
	impPart          []int32
	clicked          []bool
	impressions      [][]uint32 // impression ids by partition, in offset order
	clicks           [][]attrClick
	streamTime       []int64 // by partition: the largest timestamp of its records
	open             int64   // the first impressions, never clicked
	mixed            int64   // records after them
	nClicks          int64
}

// attrBase is the first impression's timestamp (ms).
const attrBase int64 = 1_700_000_000_000

// newAttrGen generates open impressions spread over one window, then
// mixed records in groups of three (impression, impression, click) with
// timestamps paced so that one window plus lateness — how long an
// impression stays in state — spans about open impressions. A click
// clicks the oldest not yet clicked impression of the even ones once it
// is half a window old; a group whose click has no such impression yet
// has an impression in its place.
func newAttrGen(open, mixed int64, partitions int32, window, lateness int64) (*attrGen, error) {
	g := &attrGen{
		window: window, lateness: lateness, open: open, mixed: mixed,
		impressions: make([][]uint32, partitions),
		clicks:      make([][]attrClick, partitions),
		streamTime:  make([]int64, partitions),
	}
	for p := range g.streamTime {
		g.streamTime[p] = -1
	}
	var key []byte
	addImp := func(ts int64) uint32 {
		k := uint32(len(g.impTS))
		key = appendAdKey(key[:0], k)
		p := kafkahash.Partition(key, partitions)
		g.impTS = append(g.impTS, ts)
		g.impPart = append(g.impPart, p)
		g.impressions[p] = append(g.impressions[p], k)
		g.clicked = append(g.clicked, false)
		g.streamTime[p] = max(g.streamTime[p], ts)
		return k
	}
	for i := int64(0); i < open; i++ {
		addImp(attrBase + i*window/open)
	}
	t1 := attrBase + window
	span := window + lateness
	delay := window / 2
	var queue []uint32 // clickable impressions, oldest first
	head := 0
	for j := int64(0); j < mixed; j++ {
		ts := t1 + j*span*2/(3*open)
		if j%3 == 2 {
			for head < len(queue) && ts-g.impTS[queue[head]] > window {
				head++ // too old to click: it stays unclicked
			}
			if head < len(queue) && ts-g.impTS[queue[head]] >= delay {
				k := queue[head]
				head++
				p := g.impPart[k]
				g.clicks[p] = append(g.clicks[p], attrClick{ts: ts, imp: k})
				g.clicked[k] = true
				g.streamTime[p] = max(g.streamTime[p], ts)
				g.nClicks++
				continue
			}
		}
		k := addImp(ts)
		if j%3 == 0 {
			queue = append(queue, k)
		}
		if head > 4096 && head*2 > len(queue) {
			queue = queue[:copy(queue, queue[head:])]
			head = 0
		}
	}
	return g, nil
}

func appendAdKey(dst []byte, k uint32) []byte {
	dst = append(dst, "ad"...)
	return strconv.AppendUint(dst, uint64(k), 10)
}

// expired says whether impression k had expired by its partition's final
// stream time.
func (g *attrGen) expired(k uint32) bool {
	return g.streamTime[g.impPart[k]] > g.impTS[k]+g.window+g.lateness
}

// durationParam reads a duration job parameter: a Go duration string
// ("10m") or a number of milliseconds.
func durationParam(params map[string]any, name string, def time.Duration) (time.Duration, error) {
	v, ok := params[name]
	if !ok {
		return def, nil
	}
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: %w", name, err)
		}
		return d, nil
	case time.Duration:
		return v, nil
	case float64:
		return time.Duration(v * float64(time.Millisecond)), nil
	case int:
		return time.Duration(v) * time.Millisecond, nil
	case int64:
		return time.Duration(v) * time.Millisecond, nil
	}
	return 0, fmt.Errorf("parameter %s: %v (%T) is not a duration", name, v, v)
}

// attribution runs examples/attribution on --open-windows impressions
// and --records mixed records.
func (o *joinOptions) attribution(ctx context.Context, w io.Writer, res *joinResult) error {
	dir, file, spec, err := loadExampleSpec("attribution")
	if err != nil {
		return err
	}
	if len(spec.Inputs) != 2 || len(spec.Outputs) != 3 {
		return fmt.Errorf("%s: want two inputs (impressions, clicks) and three outputs (attributed, unmatched, late), have %d and %d", filepath.Join(dir, file), len(spec.Inputs), len(spec.Outputs))
	}
	window, err := durationParam(spec.Parameters, "window", 10*time.Minute)
	if err != nil {
		return err
	}
	lateness, err := durationParam(spec.Parameters, "lateness", time.Minute)
	if err != nil {
		return err
	}
	impTopic, clickTopic := spec.Inputs[0], spec.Inputs[1]
	attributed, unmatched, late := spec.Outputs[0].Topic, spec.Outputs[1].Topic, spec.Outputs[2].Topic

	start := time.Now()
	g, err := newAttrGen(o.openWindows, o.records, o.partitions, window.Milliseconds(), lateness.Milliseconds())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "generated %d open impressions and %d records (%d impressions, %d clicks; window %s, lateness %s) in %s (not timed)\n",
		g.open, g.mixed, g.mixed-g.nClicks, g.nClicks, window, lateness, time.Since(start).Round(time.Millisecond))

	n, jobsDir, done, err := o.joinNode(ctx)
	if err != nil {
		return err
	}
	defer done()
	for _, t := range []string{impTopic, clickTopic} {
		if err := n.createTopic(t, o.partitions); err != nil {
			return err
		}
	}
	if spec, err = o.deployStopped(ctx, w, n, dir, file, res.lang, res.runtime); err != nil {
		return err
	}

	impCounts, clickCounts, openCounts := make([]int64, o.partitions), make([]int64, o.partitions), make([]int64, o.partitions)
	for p := range impCounts {
		impCounts[p], clickCounts[p] = int64(len(g.impressions[p])), int64(len(g.clicks[p]))
		// The open impressions are the first ids, so each partition's
		// first ones.
		for _, k := range g.impressions[p] {
			if int64(k) >= g.open {
				break
			}
			openCounts[p]++
		}
	}
	keys, values := make([][]byte, o.partitions), make([][]byte, o.partitions)
	// writeImpressions writes impressions [from[p], to[p]) of each
	// partition.
	writeImpressions := func(from, to []int64) error {
		counts := make([]int64, len(from))
		for p := range counts {
			counts[p] = to[p] - from[p]
		}
		return n.appendTimed(impTopic, counts, 1000, func(p int32, i int64) ([]byte, []byte, int64) {
			k := g.impressions[p][from[p]+i]
			keys[p] = appendAdKey(keys[p][:0], k)
			values[p] = strconv.AppendUint(append(values[p][:0], 'i'), uint64(k), 10)
			return keys[p], values[p], g.impTS[k]
		})
	}

	// The open windows: written, consumed by the job and checkpointed
	// by its stop, before the timed phase, which so starts with them in
	// state. (Timing them in the same run would split the phases only at
	// batch ends: a batch holds many thousands of records.)
	if err := writeImpressions(make([]int64, o.partitions), openCounts); err != nil {
		return err
	}
	start = time.Now()
	if err := n.jobs.Start(ctx, spec.Name); err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	for {
		st, err := n.jobs.Status(spec.Name)
		if err != nil {
			return err
		}
		pos := jobPositions(st, o.partitions, 0, nil)
		all := true
		for p, c := range openCounts {
			all = all && pos.input[p] >= c
		}
		if all {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loading the open windows: %w\n%s", context.Cause(ctx), jobDiagnosis(n, spec.Name))
		case <-time.After(10 * time.Millisecond):
		}
	}
	opened := time.Since(start)
	if err := n.jobs.Stop(ctx, spec.Name); err != nil {
		return fmt.Errorf("stop %s: %w", spec.Name, err)
	}
	fmt.Fprintf(w, "open windows: wrote %d impressions into %s; the job consumed them in %s, then stopped (not timed)\n", g.open, impTopic, opened.Round(time.Millisecond))

	start = time.Now()
	if err := writeImpressions(openCounts, impCounts); err != nil {
		return err
	}
	if err := n.appendTimed(clickTopic, clickCounts, 1000, func(p int32, i int64) ([]byte, []byte, int64) {
		c := g.clicks[p][i]
		keys[p] = appendAdKey(keys[p][:0], c.imp)
		values[p] = strconv.AppendUint(append(values[p][:0], 'c'), uint64(c.imp), 10)
		return keys[p], values[p], c.ts
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %d more impressions into %s and %d clicks into %s in %s (not timed)\n",
		g.mixed-g.nClicks, impTopic, g.nClicks, clickTopic, time.Since(start).Round(time.Millisecond))

	total := g.open + g.mixed
	outs := []string{attributed, unmatched, late}
	var before int64 // outputs of the open windows' run (none expected)
	for _, t := range outs {
		h, err := n.highWatermarks(t)
		if err != nil {
			return err
		}
		before += h
	}
	stages, elapsed, err := o.timed(ctx, w, res.label(), n, []string{spec.Name}, func() (bool, error) {
		st, err := n.jobs.Status(spec.Name)
		if err != nil {
			return false, err
		}
		var pos int64
		for _, v := range jobPositions(st, o.partitions, -1, nil).input {
			pos += v
		}
		if pos < total {
			return false, nil
		}
		// Positions move before a batch's outputs are appended: done
		// once the outputs hold what the job says it wrote (since its
		// tasks started).
		hw := -before
		for _, t := range outs {
			h, err := n.highWatermarks(t)
			if err != nil {
				return false, err
			}
			hw += h
		}
		return hw >= int64(totals(st).out), nil
	}, map[string]uint64{spec.Name: uint64(g.mixed)})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, jobDiagnosis(n, spec.Name))
	}
	res.total, res.stages = opened+elapsed, stages
	res.phases = []joinPhase{
		{"open windows", g.open, "impressions", opened},
		{"mixed", g.mixed, "records", elapsed},
	}
	if err := o.stopAndMeasure(ctx, n, jobsDir, spec.Name, res); err != nil {
		return err
	}
	res.topicWhat = "changelogs"
	for _, s := range spec.Stores {
		b, err := n.topicBytes(s.Changelog)
		if err != nil {
			return err
		}
		res.topicBytes += b
	}
	res.verified, err = verifyAttribution(n, g, attributed, unmatched, late)
	return err
}

// verifyAttribution checks the outputs against the model: each clicked
// impression attributed exactly once, with the right pair and in its ad's
// partition; the unmatched impressions exactly the unclicked expired ones;
// nothing late.
func verifyAttribution(n *processingNode, g *attrGen, attributed, unmatched, late string) (string, error) {
	seen := make([]uint8, len(g.impTS)) // 1: attributed, 2: unmatched
	var want []byte
	check := func(topic string, mark uint8, prefix string) (int64, error) {
		info, ok := n.b.Topic(topic)
		if !ok {
			return 0, fmt.Errorf("verifying: topic %s does not exist", topic)
		}
		var count int64
		for p := int32(0); p < info.Partitions; p++ {
			var bad error
			err := n.eachRecord(topic, p, 0, func(rec *batch.Record) bool {
				count++
				id, err := strconv.ParseUint(strings.TrimPrefix(string(rec.Key), "ad"), 10, 32)
				if err != nil || !bytes.HasPrefix(rec.Key, []byte("ad")) || id >= uint64(len(g.impTS)) {
					bad = fmt.Errorf("verifying %s-%d: offset %d has key %s, not one of the generated ads", topic, p, rec.Offset, nullableString(rec.Key))
					return false
				}
				k := uint32(id)
				want = strconv.AppendUint(append(want[:0], 'i'), id, 10)
				if mark == 1 {
					want = strconv.AppendUint(append(want, " c"...), id, 10)
				}
				switch {
				case !bytes.Equal(rec.Value, want):
					bad = fmt.Errorf("verifying %s-%d: offset %d: ad%d has value %s, want %q", topic, p, rec.Offset, k, nullableString(rec.Value), want)
				case seen[k] != 0:
					bad = fmt.Errorf("verifying %s-%d: offset %d: ad%d %s again", topic, p, rec.Offset, k, prefix)
				case g.impPart[k] != p:
					bad = fmt.Errorf("verifying %s-%d: offset %d: ad%d belongs in partition %d", topic, p, rec.Offset, k, g.impPart[k])
				case mark == 1 && !g.clicked[k]:
					bad = fmt.Errorf("verifying %s-%d: offset %d: ad%d attributed, but it was never clicked", topic, p, rec.Offset, k)
				case mark == 2 && g.clicked[k]:
					bad = fmt.Errorf("verifying %s-%d: offset %d: ad%d unmatched, but it was clicked", topic, p, rec.Offset, k)
				case mark == 2 && !g.expired(k):
					bad = fmt.Errorf("verifying %s-%d: offset %d: ad%d (ts %d) unmatched before its window and lateness passed (final stream time %d)", topic, p, rec.Offset, k, g.impTS[k], g.streamTime[p])
				}
				seen[k] = mark
				return bad == nil
			})
			if err == nil {
				err = bad
			}
			if err != nil {
				return 0, err
			}
		}
		return count, nil
	}
	nAttr, err := check(attributed, 1, "attributed")
	if err != nil {
		return "", err
	}
	if nAttr != g.nClicks {
		return "", fmt.Errorf("verifying %s: %d attributions, want one per click: %d", attributed, nAttr, g.nClicks)
	}
	nUnmatched, err := check(unmatched, 2, "unmatched")
	if err != nil {
		return "", err
	}
	var wantUnmatched int64
	for k := range g.impTS {
		if !g.clicked[k] && g.expired(uint32(k)) {
			wantUnmatched++
		}
	}
	if nUnmatched != wantUnmatched {
		return "", fmt.Errorf("verifying %s: %d unmatched impressions, want %d (the unclicked ones expired by their partition's final stream time)", unmatched, nUnmatched, wantUnmatched)
	}
	nLate, err := n.highWatermarks(late)
	if err != nil {
		return "", err
	}
	if nLate != 0 {
		return "", fmt.Errorf("verifying %s: %d late records, want none (timestamps never decrease)", late, nLate)
	}
	return fmt.Sprintf("ok: %s attributed == clicks, %s unmatched, 0 late", commas(float64(nAttr)), commas(float64(nUnmatched))), nil
}

func writeJoinTable(w io.Writer, results []joinResult) {
	fmt.Fprintln(w, "join (timed: enrich's clicks after the table's bootstrap, attribution's mixed records with the open windows in state, until the last output is in; build, compile, input writing and verification excluded)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tlang\truntime\trecords\tseconds\tper second\tstate on disk\tverified\t")
	for _, r := range results {
		if r.err != nil || len(r.phases) < 2 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\tFAILED (see above)\t\n", r.name, r.lang, r.runtime)
			continue
		}
		ph := r.phases[1]
		secs := ph.elapsed.Seconds()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%.2f\t%s %s/s\t%s\t%s\t\n", r.name, r.lang, r.runtime, commas(float64(ph.records)), ph.unit, secs,
			commas(float64(ph.records)/secs), ph.unit, humanBytes(r.stateBytes), r.verified)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nphases (enrich: split by the tasks' table positions; attribution: the open windows in a run of their own before, untimed; total: both)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tlang\truntime\tphase\trecords\tseconds\tper second\t")
	var errs []string
	for _, r := range results {
		if r.err != nil || len(r.phases) < 2 {
			continue
		}
		for _, ph := range r.phases {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%.2f\t%s %s/s\t\n", r.name, r.lang, r.runtime, ph.name, commas(float64(ph.records)), ph.unit,
				ph.elapsed.Seconds(), commas(float64(ph.records)/ph.elapsed.Seconds()), ph.unit)
		}
		recs := r.phases[0].records + r.phases[1].records
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%.2f\t%s %s/s\t\n", r.name, r.lang, r.runtime, "total", commas(float64(recs)), "records",
			r.total.Seconds(), commas(float64(recs)/r.total.Seconds()), "records")
		for _, s := range r.stages {
			for _, e := range s.lastErrors {
				errs = append(errs, r.label()+" "+s.job+" "+e)
			}
			if s.restarts > 0 {
				errs = append(errs, fmt.Sprintf("%s %s: %d task restarts", r.label(), s.job, s.restarts))
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nstorage (after the run and the job's stop)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tlang\truntime\tstate directories\ttopics\tof\t")
	for _, r := range results {
		if r.err != nil || len(r.phases) < 2 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, r.lang, r.runtime, humanBytes(r.stateBytes), humanBytes(r.topicBytes), r.topicWhat)
	}
	tw.Flush()
	for _, e := range errs {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}
