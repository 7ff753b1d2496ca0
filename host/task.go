package host

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/plugins"
)

// A task runs one partition of a job: it reads partition k of every input,
// calls the guest once per batch, appends what the guest emits and
// checkpoints. Everything below runs on the task's own goroutine except
// the status and metrics reads, which go through atomics and statusMu.
//
// Invariants the checkpoint relies on:
//   - An input position only moves past records whose Process call
//     succeeded and whose outputs were appended (AppendAsync fixes their
//     place in the log) and whose state writes were ended with commit.
//   - A checkpoint first waits for every output append to be durable, then
//     flushes state (changelog, then Pebble), and only then commits the
//     input positions. So a committed position never covers effects that a
//     crash could take back: at-least-once. After a crash, what ran after
//     the last checkpoint runs again (at most one commit interval).
type task struct {
	job       *job
	partition int32
	name      string // "job/partition", for logs and errors
	log       *slog.Logger

	inputs []*inputSource
	// tables are the job's tables; sources is inputs followed by tables.
	// A task with more than one source merges them in timestamp order
	// (merge.go).
	tables  []*inputSource
	sources []*inputSource
	// wakeAt is when an input the merge is waiting for stops being
	// waited for (zero: not waiting).
	wakeAt  time.Time
	now     time.Time // the current merge step's time (clock)
	outputs []*outputSink
	dlq     *outputSink // nil unless on-error is dead-letter

	open  openState // opens the task's state; nil for a stateless job
	state taskStore // nil for a stateless job, or until opened

	inst plugins.Instance
	host callHost

	// Per-batch scratch, reused so that the steady state allocates nothing.
	recs        []inRec
	hdrs        []batchHeader
	collectFn   func(*batchRecord) bool
	collectIn   uint32
	collectAt   int64
	collectRecs *[]inRec
	collectHdrs *[]batchHeader
	touched     []outRef
	outHdrs     []batchHeader

	lastCommit time.Time
	dirty      bool // progress since the last checkpoint
	// progress is how many records of the current chunk have been
	// handled (their calls committed, or skipped or dead-lettered).
	progress int
	rr       int // round-robin cursor over inputs

	// streamTime is the largest timestamp of the stream records handled
	// so far (-1: none), what the stream_time host function reports;
	// committedStreamTime is its value at the last checkpoint, where it
	// is stored as a fact with the offsets. callMaxTS is the largest
	// timestamp of the current call's records.
	streamTime          int64
	committedStreamTime int64
	callMaxTS           int64

	// New versions of the job to change to in place, at a batch boundary
	// (see swap), in the order they were deployed; swapReady wakes the
	// task when one arrives.
	swapMu    sync.Mutex
	swapQueue []swapRequest
	// retired is set when the goroutine ends: later swap requests are
	// dropped (swapMu).
	retired   bool
	swapReady chan struct{}
	stop      chan struct{} // closed to ask the task to stop
	stopOnce  sync.Once
	done      chan struct{} // closed when the goroutine returns
	stopCtx   context.Context
	cancel    context.CancelFunc

	// Status, read by other goroutines.
	streamTimeA  atomic.Int64
	recordsIn    atomic.Uint64
	recordsOut   atomic.Uint64
	skipped      atomic.Uint64
	deadLettered atomic.Uint64
	statusMu     sync.Mutex
	taskState    TaskState
	restarts     int
	lastError    string
	lastErrorAt  time.Time
	restore      *RestoreProgress
	restoredMax  int64 // most changelog records one restore applied, for tests
	swapPause    time.Duration
	rate         rateWindow

	m taskMetrics
}

// inputSource is one input partition of a task, or one table partition.
type inputSource struct {
	index     uint32 // in the job's inputs, or in its tables
	topic     string
	part      *storage.Partition
	pos       int64 // next offset to process (task goroutine only)
	committed int64 // last checkpoint, -1 if none (task goroutine only)
	buf       []byte

	// For a table: its name (the store's) and store handle. A table's
	// position is its store's, which checkpoints with the state.
	table bool
	name  string
	store int32
	// fullBootstrap: records before bootstrapEnd (the high watermark when
	// the task started) go before any stream record (BootstrapFull).
	fullBootstrap bool
	bootstrapEnd  int64

	// q holds the records read but not yet handled, when the task merges
	// several sources (merge.go).
	q mergeQueue

	// Copies for status readers.
	posA, committedA atomic.Int64
	// Tables: the high watermark when the task started, and the records
	// applied since.
	bootstrapEndA atomic.Int64
	appliedA      atomic.Uint64
}

// outputSink is one output topic with a batch builder per partition.
type outputSink struct {
	topic    string
	parts    []*storage.Partition
	builders []batchBuilder
	pending  []storage.Pending
	waiting  []bool // pending[i] not yet waited for
}

type outRef struct{ sink, part int32 }

func newTask(j *job, partition int32, inputs, tables []*inputSource, outputs []*outputSink, dlq *outputSink, open openState, m taskMetrics) *task {
	t := &task{
		job:       j,
		partition: partition,
		name:      j.spec.Name + "/" + strconv.Itoa(int(partition)),
		inputs:    inputs,
		tables:    tables,
		sources:   append(inputs[:len(inputs):len(inputs)], tables...),
		outputs:   outputs,
		dlq:       dlq,
		open:      open,
		swapReady: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		taskState: TaskStarting,
		m:         m,
	}
	t.log = j.log.With("task", t.name)
	j.hold() // released by retire
	t.host.t = t
	t.collectFn = t.collect
	t.stopCtx, t.cancel = context.WithCancel(context.Background())
	// Positions are known before the goroutine starts, so that a status
	// read right after Deploy or NewManager shows them.
	t.loadPositions()
	return t
}

// seed makes each task's guest clocks and randomness deterministic and
// distinct from every other task's.
func (t *task) seed() uint64 {
	h := fnv.New64a()
	h.Write([]byte(t.job.spec.Name))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(int(t.partition))))
	return h.Sum64()
}

// errStopped ends a run that a stop interrupted in the middle of a call;
// nothing after the last checkpoint is kept.
var errStopped = errors.New("stopped during a call")

// requestStop asks the task to stop after its current batch and a final
// checkpoint.
func (t *task) requestStop() {
	t.stopOnce.Do(func() {
		close(t.stop)
		t.cancel()
	})
}

func (t *task) stopping() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

func (t *task) setState(s TaskState) {
	t.statusMu.Lock()
	t.taskState = s
	t.statusMu.Unlock()
}

// maxDirtyBytes makes a task checkpoint early when its unflushed state
// writes grow past it, which bounds the memory they hold.
const maxDirtyBytes = 64 << 20

const (
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 30 * time.Second
	healthyToReset = time.Minute
)

// run is the task's goroutine: run the instance until it fails, then back
// off and start again from the last checkpoint, until asked to stop.
func (t *task) run() {
	defer close(t.done)
	defer t.retire()
	backoff := backoffMin
	for {
		started := time.Now()
		err := t.runGuarded()
		if t.stopping() || err == nil {
			t.shutdown(err)
			return
		}
		if time.Since(started) > healthyToReset {
			backoff = backoffMin
		}
		t.fail(err)
		t.setState(TaskBackoff)
		timer := time.NewTimer(backoff)
	backingOff:
		for {
			select {
			case <-t.stop:
				timer.Stop()
				t.shutdown(nil)
				return
			case <-t.swapReady:
				// No instance to change: the restart uses the new version.
				for _, req := range t.takeSwaps() {
					t.job.release()
					t.job = req.job // with the request's hold
					req.done <- swapResult{}
				}
			case <-timer.C:
				break backingOff
			}
		}
		backoff = min(backoff*2, backoffMax)
		t.statusMu.Lock()
		t.restarts++
		t.statusMu.Unlock()
		t.m.restarts.Inc()
	}
}

// runGuarded is runOnce with a panic in the host's own code turned into a
// task error, so that a bug in one task never takes the node down.
func (t *task) runGuarded() (err error) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("task panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error (task panicked): %v", r)
		}
	}()
	return t.runOnce()
}

// fail records a task failure and undoes everything since the last
// checkpoint.
func (t *task) fail(err error) {
	msg := err.Error()
	t.log.Warn("task failed; restarting from its last checkpoint", "err", msg)
	t.statusMu.Lock()
	t.lastError = msg
	t.lastErrorAt = time.Now()
	t.statusMu.Unlock()
	t.closeInstance()
	t.resetToCheckpoint()
}

// resetToCheckpoint drops effects not covered by the last checkpoint:
// unflushed state writes and the positions. Outputs already appended stay
// in their topics (they are replayed: at-least-once).
func (t *task) resetToCheckpoint() {
	if t.state != nil {
		if err := t.rollbackState(); err != nil {
			// State that cannot be rolled back is reopened from disk.
			t.log.Warn("state rollback failed; reopening it", "err", err)
			t.closeState()
		}
	}
	for _, in := range t.inputs {
		if in.committed >= 0 {
			in.pos = in.committed
		} else {
			in.pos = in.part.LogStartOffset()
		}
		in.posA.Store(in.pos)
	}
	// Tables go back with their stores (runOnce reads their positions
	// again); records read ahead are read again.
	for _, s := range t.sources {
		s.q.clear()
		s.q.end = s.pos
	}
	t.streamTime = t.committedStreamTime
	t.streamTimeA.Store(t.streamTime)
	for _, s := range t.sinks() {
		for i := range s.waiting {
			s.waiting[i] = false
		}
	}
	t.host.reset()
	t.dirty = false
}

func (t *task) closeInstance() {
	if t.inst != nil {
		t.inst.Close(context.Background())
		t.inst = nil
	}
}

// shutdown ends the task: a final checkpoint if the last run ended well,
// then everything closed.
func (t *task) shutdown(err error) {
	if err == nil && t.inst != nil {
		if cerr := t.checkpoint(); cerr != nil {
			t.log.Warn("final checkpoint failed", "err", cerr)
		}
	}
	t.closeInstance()
	t.closeState()
	t.setState(TaskStopped)
}

// runOnce starts the task from its checkpoint and processes input until
// the task is asked to stop (nil) or fails (the error).
func (t *task) runOnce() error {
	t.setState(TaskStarting)
	if err := t.loadPositions(); err != nil {
		return err
	}
	if t.open != nil && t.state == nil {
		st, err := t.open(t.stopCtx, t)
		if err != nil {
			return fmt.Errorf("opening state: %w", err)
		}
		t.state = st
	}
	if t.state != nil {
		if err := t.restoreState(t.stopCtx); err != nil {
			if t.stopping() {
				return nil
			}
			return fmt.Errorf("restoring state: %w", err)
		}
	}
	t.statusMu.Lock()
	t.restore = nil
	t.statusMu.Unlock()
	if err := t.loadTablePositions(); err != nil {
		return err
	}
	if t.stopping() {
		return nil
	}
	if err := t.instantiate(); err != nil {
		return err
	}
	t.setState(TaskRunning)
	t.lastCommit = time.Now()
	return t.loop()
}

func (t *task) instantiate() error {
	inst, err := t.job.module.Instantiate(context.Background(), plugins.InstanceConfig{
		Name:   t.name,
		Params: t.job.params,
		Limits: t.job.limits,
		Host:   &t.host,
		Stdout: newLogWriter(t.log, slog.LevelInfo, "stdout"),
		Stderr: newLogWriter(t.log, slog.LevelWarn, "stderr"),
		Seed:   t.seed(),
	})
	if err != nil {
		return err
	}
	t.inst = inst
	return nil
}

// replaceInstance swaps a faulted instance for a new one. The task's state
// is unaffected: the failed call's writes were discarded, and everything
// before it is in the host's store, which the new instance reads.
func (t *task) replaceInstance() error {
	t.closeInstance()
	t.m.instanceFaults.Inc()
	return t.instantiate()
}

// loadPositions sets each input's position from the job's committed
// offsets (or the log start when there are none).
func (t *task) loadPositions() error {
	g := t.job.group
	for _, in := range t.inputs {
		lso, hw := in.part.LogStartOffset(), in.part.HighWatermark()
		in.committed = -1
		in.pos = lso
		if o, ok := t.job.offsets.Fetch(g, group.TopicPartition{Topic: in.topic, Partition: t.partition}); ok {
			in.committed = o.Offset
			in.pos = o.Offset
		}
		// Retention may have removed the committed offset, or the topic
		// may have been recreated shorter.
		if in.pos < lso {
			t.log.Warn("committed offset is before the log start; skipping ahead", "topic", in.topic, "committed", in.pos, "log_start", lso)
			in.pos = lso
		}
		if in.pos > hw {
			t.log.Warn("committed offset is past the end of the log; starting at the end", "topic", in.topic, "committed", in.pos, "end", hw)
			in.pos = hw
		}
		in.posA.Store(in.pos)
		in.committedA.Store(in.committed)
		// Nothing read ahead survives a (re)start: the merge reads from
		// the position again.
		in.q.clear()
		in.q.end = in.pos
	}
	t.committedStreamTime = -1
	if v, ok := t.job.offsets.Fact(g, t.streamTimeFact()); ok {
		st, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("stored stream time %q: %w", v, err)
		}
		t.committedStreamTime = st
	}
	t.streamTime = t.committedStreamTime
	t.streamTimeA.Store(t.streamTime)
	return nil
}

// streamTimeFact names the fact that keeps the task's stream time with its
// committed offsets.
func (t *task) streamTimeFact() string {
	return "streamtime/" + strconv.Itoa(int(t.partition))
}

// advanceStreamTime moves stream time to ts if ts is later. Records
// without a timestamp (-1) do not move it.
func (t *task) advanceStreamTime(ts int64) {
	if ts > t.streamTime {
		t.streamTime = ts
		t.streamTimeA.Store(ts)
	}
}

// loop is the event loop: one input chunk per iteration, inputs in turn.
func (t *task) loop() error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if t.stopping() {
			return nil
		}
		for _, req := range t.takeSwaps() {
			if err := t.swap(req); err != nil {
				return err
			}
		}
		interval := t.job.spec.CommitInterval
		progressed, err := t.step()
		if err != nil {
			return err
		}
		if t.dirty && (time.Since(t.lastCommit) >= interval || t.state != nil && t.state.DirtyBytes() > maxDirtyBytes) {
			if err := t.checkpoint(); err != nil {
				return err
			}
		}
		if progressed {
			continue
		}
		// Caught up. Make what was emitted visible downstream now rather
		// than at the next checkpoint, then wait for input, a stop, the
		// checkpoint due or the end of a wait for a lagging input.
		if err := t.waitOutputs(); err != nil {
			return err
		}
		notify := t.notifyChannels()
		if t.anyInputAhead() {
			continue
		}
		var due <-chan time.Time
		wait := time.Duration(-1)
		if t.dirty {
			wait = interval - time.Since(t.lastCommit)
		}
		if !t.wakeAt.IsZero() {
			if w := time.Until(t.wakeAt); wait < 0 || w < wait {
				wait = max(w, 0)
			}
		}
		if wait >= 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			due = timer.C
		}
		t.wait(notify, due)
	}
}

// requestSwap queues a change of version for the task; the request holds
// req.job's module until the task handles it. A task that has ended drops
// the request.
func (t *task) requestSwap(req swapRequest) {
	t.swapMu.Lock()
	if t.retired {
		t.swapMu.Unlock()
		return
	}
	req.job.hold()
	t.swapQueue = append(t.swapQueue, req)
	t.swapMu.Unlock()
	select {
	case t.swapReady <- struct{}{}:
	default:
	}
}

// retire lets go, as the task's goroutine ends, of the module of the
// task's version and of those of the swap requests it did not handle.
func (t *task) retire() {
	t.swapMu.Lock()
	t.retired = true
	q := t.swapQueue
	t.swapQueue = nil
	t.swapMu.Unlock()
	for _, req := range q {
		req.job.release()
	}
	t.job.release()
}

func (t *task) takeSwaps() []swapRequest {
	t.swapMu.Lock()
	defer t.swapMu.Unlock()
	q := t.swapQueue
	t.swapQueue = nil
	return q
}

// swapRequest asks a task to change to another version of its job.
type swapRequest struct {
	job  *job
	done chan swapResult // buffered: the task never blocks on it
}

type swapResult struct {
	pause time.Duration // from the last batch of the old instance to the new instance being ready
	err   error
}

// swap changes the task's instance to req.job's module and parameters
// between two batches: drop the old instance, instantiate the new one on
// the same state and positions. If the new version does not start, the old
// one is instantiated again and the error reported; the task fails only if
// neither starts.
//
// No checkpoint is needed first: positions, state (the host's store and
// its staging) and appended outputs belong to the task, not the instance,
// and carry over as they are; the next regular checkpoint covers both
// versions' work. An instance keeps nothing the host needs between calls
// (the Go SDK's state cache sends every write at the end of its batch).
func (t *task) swap(req swapRequest) error {
	start := time.Now()
	old := t.job
	t.closeInstance()
	t.job = req.job
	err := t.instantiate()
	if err != nil {
		t.job = old
		req.job.release() // the request's hold
		if rerr := t.instantiate(); rerr != nil {
			req.done <- swapResult{err: err}
			return fmt.Errorf("the new version does not start (%v) and the old one no longer does: %w", err, rerr)
		}
	} else {
		old.release() // the task's hold is now the request's, on req.job
	}
	pause := time.Since(start)
	if err == nil {
		t.statusMu.Lock()
		t.swapPause = pause
		t.statusMu.Unlock()
		t.m.swaps.Inc()
		t.m.swapPause.Observe(pause.Seconds())
		t.log.Info("changed to a new version of the job", "module_sha256", t.job.sha, "pause", pause)
	}
	req.done <- swapResult{pause: pause, err: err}
	return nil
}

// notifyChannels asks each input for its "high watermark moved" channel;
// it must be called before checking the watermarks (see Partition.Notify).
func (t *task) notifyChannels() []<-chan struct{} {
	chans := t.host.notify[:0]
	for _, in := range t.sources {
		chans = append(chans, in.part.Notify())
	}
	t.host.notify = chans
	return chans
}

func (t *task) anyInputAhead() bool {
	if len(t.sources) > 1 {
		return t.mergeAhead()
	}
	for _, in := range t.inputs {
		if in.pos < in.part.HighWatermark() {
			return true
		}
	}
	return false
}

func (t *task) wait(notify []<-chan struct{}, due <-chan time.Time) {
	if len(notify) == 1 {
		select {
		case <-notify[0]:
		case <-t.stop:
		case <-due:
		case <-t.swapReady: // handled at the top of the loop
		}
		return
	}
	// Several inputs: a goroutine per input is cheaper to reason about
	// than reflect.Select, and this path only runs when idle.
	woke := make(chan struct{}, len(notify))
	quit := make(chan struct{})
	for _, ch := range notify {
		go func(ch <-chan struct{}) {
			select {
			case <-ch:
				woke <- struct{}{}
			case <-quit:
			}
		}(ch)
	}
	select {
	case <-woke:
	case <-t.stop:
	case <-due:
	case <-t.swapReady:
	}
	close(quit)
}

// step processes one chunk of one input, trying the inputs in turn from
// the round-robin cursor. It reports whether any input had records.
func (t *task) step() (bool, error) {
	if len(t.sources) > 1 {
		return t.stepMerged()
	}
	n := len(t.inputs)
	for i := 0; i < n; i++ {
		in := t.inputs[(t.rr+i)%n]
		ok, err := t.processChunk(in)
		if err != nil {
			return false, err
		}
		if ok {
			t.rr = (t.rr + i + 1) % n
			return true, nil
		}
	}
	return false, nil
}

// checkpoint makes everything up to the current positions durable and
// commits the positions (see the invariants on task).
func (t *task) checkpoint() error {
	if !t.dirty {
		return nil
	}
	if err := t.waitOutputs(); err != nil {
		return err
	}
	var facts []group.Fact
	if t.state != nil {
		f, err := t.flushState()
		if err != nil {
			return fmt.Errorf("flushing state: %w", err)
		}
		facts = f
	}
	if t.streamTime != t.committedStreamTime {
		facts = append(facts, group.Fact{Name: t.streamTimeFact(), Value: []byte(strconv.FormatInt(t.streamTime, 10))})
	}
	offsets := make(map[group.TopicPartition]group.Offset, len(t.inputs))
	for _, in := range t.inputs {
		offsets[group.TopicPartition{Topic: in.topic, Partition: t.partition}] = group.Offset{Offset: in.pos, LeaderEpoch: -1}
	}
	if err := t.job.offsets.Commit(group.Commit{Group: t.job.group, Offsets: offsets, Facts: facts}); err != nil {
		return fmt.Errorf("committing offsets: %w", err)
	}
	for _, in := range t.inputs {
		in.committed = in.pos
		in.committedA.Store(in.pos)
		t.m.lag(in).Set(float64(in.part.HighWatermark() - in.pos))
	}
	t.committedStreamTime = t.streamTime
	t.lastCommit = time.Now()
	t.dirty = false
	return nil
}

func (t *task) sinks() []*outputSink {
	if t.dlq == nil {
		return t.outputs
	}
	return append(t.outputs[:len(t.outputs):len(t.outputs)], t.dlq)
}

// waitOutputs waits until every output append so far is durable.
func (t *task) waitOutputs() error {
	for _, s := range t.outputs {
		if err := s.waitAll(); err != nil {
			return fmt.Errorf("output %s: %w", s.topic, err)
		}
	}
	if t.dlq != nil {
		if err := t.dlq.waitAll(); err != nil {
			return fmt.Errorf("dead-letter topic %s: %w", t.dlq.topic, err)
		}
	}
	return nil
}

func (s *outputSink) waitAll() error {
	for i, w := range s.waiting {
		if !w {
			continue
		}
		if err := s.pending[i].Wait(); err != nil {
			return err
		}
		s.waiting[i] = false
	}
	return nil
}

// status reports the task's figures.
func (t *task) status() TaskStatus {
	st := TaskStatus{
		Partition:    t.partition,
		RecordsIn:    t.recordsIn.Load(),
		RecordsOut:   t.recordsOut.Load(),
		Skipped:      t.skipped.Load(),
		DeadLettered: t.deadLettered.Load(),
	}
	for _, in := range t.inputs {
		pos, committed, end := in.posA.Load(), in.committedA.Load(), in.part.HighWatermark()
		lag := end - committed
		if committed < 0 {
			lag = end - in.part.LogStartOffset()
		}
		st.Inputs = append(st.Inputs, InputPosition{Topic: in.topic, Position: pos, Committed: committed, End: end, Lag: lag})
	}
	bootstrapping := false
	for _, tb := range t.tables {
		tp := TablePosition{Table: tb.name, Topic: tb.topic, Position: tb.posA.Load(), End: tb.part.HighWatermark(),
			BootstrapEnd: tb.bootstrapEndA.Load(), Applied: tb.appliedA.Load()}
		if tp.Position < tp.BootstrapEnd {
			bootstrapping = true
		}
		st.Tables = append(st.Tables, tp)
	}
	st.StreamTime = t.streamTimeA.Load()
	t.statusMu.Lock()
	st.State = t.taskState
	if st.State == TaskRunning && bootstrapping {
		st.State = TaskBootstrapping
	}
	st.Restarts = t.restarts
	st.LastError = t.lastError
	st.LastErrorAt = t.lastErrorAt
	st.LastSwapPause = t.swapPause
	if t.restore != nil {
		r := *t.restore
		st.Restore = &r
	}
	st.RecordsPerSec = t.rate.perSec()
	t.statusMu.Unlock()
	return st
}

// sampleRate records the input count for RecordsPerSec; the manager calls
// it every second.
func (t *task) sampleRate(now time.Time) {
	n := t.recordsIn.Load()
	t.statusMu.Lock()
	t.rate.add(now, n)
	t.statusMu.Unlock()
}

// rateWindow is a ring of (time, count) samples over the last few seconds.
type rateWindow struct {
	at    [6]time.Time
	count [6]uint64
	next  int
	n     int
}

func (w *rateWindow) add(now time.Time, count uint64) {
	w.at[w.next], w.count[w.next] = now, count
	w.next = (w.next + 1) % len(w.at)
	if w.n < len(w.at) {
		w.n++
	}
}

func (w *rateWindow) perSec() float64 {
	if w.n < 2 {
		return 0
	}
	newest := (w.next - 1 + len(w.at)) % len(w.at)
	oldest := (w.next - w.n + len(w.at)) % len(w.at)
	dt := w.at[newest].Sub(w.at[oldest]).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(w.count[newest]-w.count[oldest]) / dt
}
