// Package host runs WebAssembly operators as jobs on a sluice node, in the
// manner of Samza: a job is a module plus a job file (inputs, outputs,
// state stores, limits, error policy); it runs as one task per input
// partition, each task a single goroutine with its own Wasm instance and
// its own state, reading batches from the node's partitions, calling the
// guest once per batch, appending what it emits to the output topics and
// checkpointing its input offsets once outputs and state are durable.
//
// The Manager deploys, persists, starts and stops jobs; cmd/sluice and the
// admin API (host/admin) drive it. Job files are parsed by LoadJobFile.
//
// # Guarantees
//
// Processing is at-least-once. A task checkpoints every commit-interval
// (and when stopped): it waits until every output append is durable,
// flushes its state (changelog first, then Pebble), and only then commits
// its input offsets, with the changelog offsets as facts, in one commit.
// After a crash or a guest fault, a task starts again from its last
// checkpoint: input processed since then runs again, so its outputs may
// appear twice and its state writes are redone (at most one commit
// interval's worth, plus the batch in flight).
//
// # Data directory
//
//	<data-dir>/jobs/<name>/job.json             spec, desired state, module digest
//	<data-dir>/jobs/<name>/module-<sha256>.wasm the module
//	<data-dir>/jobs/<name>/state/<partition>/   the task's Pebble database
//	<data-dir>/wasm-cache/                      compiled code cache
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/internal/atomicfile"
	"github.com/sluice-io/sluice/plugins"
)

// Config configures a Manager.
type Config struct {
	// DataDir is the node's data directory; jobs live under DataDir/jobs.
	DataDir string
	Broker  *broker.Broker
	// Offsets stores the tasks' checkpoints (the node's group offsets).
	Offsets    *group.OffsetStore
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Runtime, when set, runs the jobs whose runtime has its name instead
	// of one the Manager opens (the others are opened on first use, with
	// their compilation caches under DataDir/wasm-cache). The Manager
	// closes it.
	Runtime plugins.Runtime
}

// Manager owns a node's jobs. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	// runtimes holds the Wasm runtimes opened so far, by name; rtMu
	// guards it.
	rtMu     sync.Mutex
	runtimes map[string]plugins.Runtime
	dir      string

	// deployMu serializes changes to jobs (deploy, stop, start), which
	// can take a while, without blocking status reads.
	deployMu sync.Mutex
	mu       sync.Mutex
	jobs     map[string]*job
	closed   bool

	samplerStop chan struct{}
	samplerDone chan struct{}
}

// job is one deployed job.
type job struct {
	spec JobSpec
	// module is the job's compiled module, nil if it did not compile or
	// the job failed to start (Start compiles it again). It is closed when
	// refs drops to zero.
	module plugins.Module
	// refs counts the holders of module: the Manager while the job is
	// its name's current version (or is being deployed), each task whose
	// version it is, and each queued request of a task to change to it.
	// The last release closes module, so that a version that no task runs
	// any more does not keep its compiled code.
	refs     atomic.Int32
	sha      string
	deployed time.Time
	desired  JobState // running or stopped, persisted
	version  int      // in the job's history
	// deployErr is why the last deployment of a new version failed.
	deployErr string
	err       string // why the job could not start (state failed)
	tasks     []*task
	log       *slog.Logger

	// Derived from spec, for tasks.
	params  []byte
	limits  plugins.Limits
	group   string
	offsets *group.OffsetStore
}

// persistedJob is job.json.
type persistedJob struct {
	Spec      JobSpec   `json:"spec"`
	State     JobState  `json:"state"`
	ModuleSHA string    `json:"module_sha256"`
	Deployed  time.Time `json:"deployed"`
	Version   int       `json:"version,omitempty"`
}

// NewManager opens the jobs under cfg.DataDir and starts those whose
// desired state is running. A job that cannot start (its module no longer
// compiles, an input topic is gone) is kept in state failed with the
// reason, and does not prevent the others from starting.
func NewManager(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("host: no data directory")
	}
	if cfg.Broker == nil || cfg.Offsets == nil {
		return nil, errors.New("host: a broker and an offset store are needed")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{
		cfg:         cfg,
		log:         cfg.Logger,
		dir:         filepath.Join(cfg.DataDir, "jobs"),
		jobs:        map[string]*job{},
		metrics:     newMetrics(cfg.Registerer),
		samplerStop: make(chan struct{}),
		samplerDone: make(chan struct{}),
	}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	m.runtimes = map[string]plugins.Runtime{}
	if cfg.Runtime != nil {
		m.runtimes[cfg.Runtime.Name()] = cfg.Runtime
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		m.closeRuntimes()
		return nil, fmt.Errorf("host: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		j, err := m.load(ctx, e.Name())
		if err != nil {
			m.log.Error("job cannot be loaded", "job", e.Name(), "err", err)
			if j == nil {
				continue
			}
		}
		m.jobs[j.spec.Name] = j
		if j.desired == JobRunning && j.err == "" {
			if err := m.startTasks(j); err != nil {
				j.err = err.Error()
				m.dropModule(j)
				m.log.Error("job cannot start", "job", j.spec.Name, "err", err)
			}
		}
	}
	go m.sampleRates()
	return m, nil
}

// load reads one persisted job. A job whose module fails to compile is
// returned with err set (state failed).
func (m *Manager) load(ctx context.Context, name string) (*job, error) {
	dir := filepath.Join(m.dir, name)
	data, err := os.ReadFile(filepath.Join(dir, "job.json"))
	if err != nil {
		return nil, err
	}
	var pj persistedJob
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, fmt.Errorf("job.json: %w", err)
	}
	spec, err := NormalizeSpec(pj.Spec)
	if err != nil {
		return nil, err
	}
	j := m.newJob(spec, pj.ModuleSHA, pj.Deployed, pj.State)
	j.version = pj.Version
	wasm, err := os.ReadFile(filepath.Join(dir, moduleFile(pj.ModuleSHA)))
	if err == nil {
		var mod plugins.Module
		if mod, err = m.compile(ctx, spec.Runtime, wasm); err == nil {
			j.setModule(mod)
		}
	}
	if err != nil {
		j.err = fmt.Sprintf("module: %v", err)
		return j, err
	}
	return j, nil
}

func moduleFile(sha string) string { return "module-" + sha + ".wasm" }

// setModule gives j its compiled module, held by the Manager (see
// job.refs).
func (j *job) setModule(mod plugins.Module) {
	j.module = mod
	j.refs.Store(1)
}

// hold counts one more holder of j's module.
func (j *job) hold() { j.refs.Add(1) }

// release drops one holder of j's module and closes the module when it
// was the last.
func (j *job) release() {
	if j.module == nil {
		return
	}
	switch n := j.refs.Add(-1); {
	case n == 0:
		if err := j.module.Close(context.Background()); err != nil {
			j.log.Warn("closing the module", "module_sha256", j.sha, "err", err)
		}
	case n < 0:
		j.log.Error("BUG: module released more often than held", "module_sha256", j.sha)
	}
}

// dropModule lets go of the module of a job that failed to start (it has
// no tasks), so that a failed job does not keep compiled code; Start
// compiles it again. It runs under deployMu or before the Manager is
// shared.
func (m *Manager) dropModule(j *job) {
	if j.module == nil || len(j.tasks) > 0 {
		return
	}
	j.release()
	m.mu.Lock()
	j.module = nil
	m.mu.Unlock()
}

// ensureModule compiles again the module of a job whose module was
// dropped (see dropModule). It runs under deployMu.
func (m *Manager) ensureModule(ctx context.Context, j *job) error {
	if j.module != nil {
		return nil
	}
	wasm, err := os.ReadFile(filepath.Join(m.dir, j.spec.Name, moduleFile(j.sha)))
	if err != nil {
		return fmt.Errorf("job %s cannot start: module: %v", j.spec.Name, err)
	}
	mod, err := m.compile(ctx, j.spec.Runtime, wasm)
	if err != nil {
		return fmt.Errorf("job %s cannot start: module: %v", j.spec.Name, err)
	}
	m.mu.Lock()
	j.setModule(mod)
	m.mu.Unlock()
	return nil
}

func (m *Manager) newJob(spec JobSpec, sha string, deployed time.Time, desired JobState) *job {
	params := []byte("{}")
	if len(spec.Parameters) > 0 {
		if b, err := json.Marshal(spec.Parameters); err == nil {
			params = b
		}
	}
	return &job{
		spec:     spec,
		sha:      sha,
		deployed: deployed,
		desired:  desired,
		log:      m.log.With("job", spec.Name),
		params:   params,
		limits: plugins.Limits{
			MemoryBytes:    spec.Limits.MemoryBytes,
			CallTimeout:    spec.Limits.CallTimeout,
			MaxOutputBytes: spec.Limits.MaxOutputBytes,
		}.WithDefaults(),
		group:   "sluice-job-" + spec.Name,
		offsets: m.cfg.Offsets,
	}
}

// Deploy validates spec, compiles and test-initializes module, checks and
// creates the job's topics, persists the job and starts its tasks. A job
// of the same name gets a new version: if it is running, each task changes
// to the new module and parameters in place at a batch boundary (see
// task.swap), keeping its state and positions; otherwise it starts with
// the new version. A new version may not change the job's topics (inputs,
// outputs, stores, dead-letter topic): that is a new job. Nothing changes
// when validation fails; the errors wrap ErrInvalidJob (or are the
// runtime's *plugins.ValidationError or *plugins.InitError). Deploy is
// DeployBy with origin "api".
func (m *Manager) Deploy(ctx context.Context, spec JobSpec, module []byte) (JobStatus, error) {
	return m.DeployBy(ctx, spec, module, "api")
}

func (m *Manager) deploy(ctx context.Context, spec JobSpec, module []byte, by string) (JobStatus, error) {
	spec, err := NormalizeSpec(spec)
	if err != nil {
		return JobStatus{}, err
	}
	if len(module) == 0 {
		return JobStatus{}, fmt.Errorf("%w: no module", ErrInvalidJob)
	}
	// Everything that can fail without touching the running version
	// happens first, without the deploy lock: compiling a module takes a
	// while and must not hold up other jobs' changes (or this one's tasks).
	mod, err := m.compile(ctx, spec.Runtime, module)
	if err != nil {
		return JobStatus{}, err
	}
	sha := sha256Hex(module)
	j := m.newJob(spec, sha, time.Now().UTC(), JobRunning)
	j.setModule(mod)
	// installed is set once j is its name's current version: the
	// Manager's hold on its module is then the job's, released when the
	// job is replaced or deleted. Otherwise the deployment failed and
	// nothing else holds the module.
	installed := false
	defer func() {
		if !installed {
			j.release()
		}
	}()
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{
		Name:   spec.Name + "/deploy",
		Params: j.params,
		Limits: j.limits,
		Host:   initHost{stores: spec.Stores, tables: spec.Tables},
	})
	if err != nil {
		// The cause is kept as text: a runtime fault's error chain is the
		// runtime's business, and callers only need to know the job is bad.
		return JobStatus{}, fmt.Errorf("%w: the operator does not start: %v", ErrInvalidJob, err)
	}
	inst.Close(ctx)

	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	if m.isClosed() {
		return JobStatus{}, ErrClosed
	}
	m.mu.Lock()
	old := m.jobs[spec.Name]
	m.mu.Unlock()
	if old != nil {
		if err := sameTopics(old.spec, spec); err != nil {
			return JobStatus{}, err
		}
	}
	plan, err := m.planTopics(spec)
	if err != nil {
		return JobStatus{}, err
	}
	hist, err := m.readHistory(spec.Name)
	if err != nil {
		return JobStatus{}, err
	}
	j.version = hist.next()
	entry := historyEntry{JobVersion: JobVersion{Version: j.version, ModuleSHA: sha, Parameters: spec.Parameters,
		At: j.deployed, By: by, Result: VersionActive}, Spec: &spec}

	if old != nil && old.desired == JobRunning && len(old.tasks) > 0 && old.err == "" {
		st, err := m.swapIn(old, j, plan, module, hist, entry)
		installed = err == nil
		return st, err
	}
	if old != nil {
		m.stopTasks(old)
	}
	err = plan.create(m.cfg.Broker)
	if err == nil {
		err = m.persist(j, module)
	}
	if err == nil {
		err = m.writeHistory(spec.Name, hist.add(entry))
	}
	if err != nil {
		if old != nil && old.desired == JobRunning {
			// Leave the old version running, as it was.
			_ = m.persist(old, nil)
			if serr := m.startTasks(old); serr != nil {
				m.setErr(old, serr)
				m.dropModule(old)
			}
		}
		return JobStatus{}, err
	}
	m.mu.Lock()
	m.jobs[spec.Name] = j
	m.mu.Unlock()
	installed = true
	if old != nil {
		old.release() // its tasks are stopped: this frees its module
	}
	m.pruneModules(spec.Name)
	if err := m.startTasks(j); err != nil {
		m.setErr(j, err)
		m.dropModule(j)
		return m.statusOf(j), err
	}
	j.log.Info("job deployed", "version", j.version, "module_sha256", sha, "tasks", len(j.tasks), "by", by)
	return m.statusOf(j), nil
}

// topicPlan is what Deploy checked and must create.
type topicPlan struct {
	tasks  int32
	topics []topicToCreate
}

type topicToCreate struct {
	name       string
	partitions int32
	config     map[string]string
}

func (p *topicPlan) create(b *broker.Broker) error {
	for _, c := range p.topics {
		if _, err := b.CreateTopic(c.name, c.partitions, c.config); err != nil && !errors.Is(err, broker.ErrTopicExists) {
			return fmt.Errorf("creating topic %s: %w", c.name, err)
		}
	}
	return nil
}

// planTopics checks the job's topics against the broker: inputs exist and
// are co-partitioned, existing changelogs have one partition per task.
func (m *Manager) planTopics(spec JobSpec) (*topicPlan, error) {
	b := m.cfg.Broker
	var problems []string
	counts := make([]int32, len(spec.Inputs))
	for i, in := range spec.Inputs {
		info, ok := b.Topic(in)
		if !ok {
			problems = append(problems, fmt.Sprintf("input topic %q does not exist; create it with `sluice topic create %s`", in, in))
			continue
		}
		counts[i] = info.Partitions
	}
	tableCounts := make([]int32, len(spec.Tables))
	for i, tb := range spec.Tables {
		info, ok := b.Topic(tb.Topic)
		if !ok {
			problems = append(problems, fmt.Sprintf("table topic %q does not exist; create it with `sluice topic create %s --config cleanup.policy=compact` and the inputs' partition count", tb.Topic, tb.Topic))
			continue
		}
		tableCounts[i] = info.Partitions
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidJob, strings.Join(problems, "; "))
	}
	tasks := counts[0]
	for _, c := range counts[1:] {
		if c != tasks {
			var desc []string
			for i, in := range spec.Inputs {
				desc = append(desc, fmt.Sprintf("%s has %d", in, counts[i]))
			}
			return nil, fmt.Errorf("%w: inputs are not co-partitioned (%s); a job's inputs need the same partition count: repartition one of them with a job that reads it and writes a topic with the right count", ErrInvalidJob, strings.Join(desc, ", "))
		}
	}
	for i, c := range tableCounts {
		if c != tasks {
			return nil, fmt.Errorf("%w: table %s (topic %s) has %d partitions but the inputs have %d; a table is joined partition by partition with the inputs, so it needs the same count: %s",
				ErrInvalidJob, spec.Tables[i].Name, spec.Tables[i].Topic, c, tasks, repartitionHint(spec.Tables[i].Topic))
		}
	}
	if err := m.checkCopartitioned(spec); err != nil {
		return nil, err
	}
	plan := &topicPlan{tasks: tasks}
	for _, o := range spec.Outputs {
		if _, ok := b.Topic(o.Topic); ok {
			continue
		}
		n := o.Partitions
		if n == 0 {
			n = tasks
		}
		if err := broker.ValidateTopic(o.Topic, n, o.Config); err != nil {
			return nil, fmt.Errorf("%w: output topic %s: %w", ErrInvalidJob, o.Topic, err)
		}
		plan.topics = append(plan.topics, topicToCreate{o.Topic, n, o.Config})
	}
	for _, s := range spec.Stores {
		if info, ok := b.Topic(s.Changelog); ok {
			if info.Partitions != tasks {
				return nil, fmt.Errorf("%w: changelog topic %s of store %s has %d partitions, but the job has %d tasks (one per input partition); delete it or name another changelog", ErrInvalidJob, s.Changelog, s.Name, info.Partitions, tasks)
			}
			continue
		}
		plan.topics = append(plan.topics, topicToCreate{s.Changelog, tasks, map[string]string{"cleanup.policy": "compact"}})
	}
	if spec.OnError == PolicyDeadLetter {
		if _, ok := b.Topic(spec.DeadLetterTopic); !ok {
			plan.topics = append(plan.topics, topicToCreate{spec.DeadLetterTopic, tasks, nil})
		}
	}
	return plan, nil
}

// checkCopartitioned samples the keys of a multi-source job's inputs and
// tables (see copartition.go).
func (m *Manager) checkCopartitioned(spec JobSpec) error {
	topics := make([]string, 0, len(spec.Inputs)+len(spec.Tables))
	topics = append(topics, spec.Inputs...)
	for _, tb := range spec.Tables {
		topics = append(topics, tb.Topic)
	}
	if len(topics) < 2 {
		return nil
	}
	parts := make([][]*storage.Partition, len(topics))
	for i, topic := range topics {
		info, _ := m.cfg.Broker.Topic(topic)
		for p := int32(0); p < info.Partitions; p++ {
			part, err := m.cfg.Broker.Partition(topic, p)
			if err != nil {
				return fmt.Errorf("sampling %s: %w", topic, err)
			}
			parts[i] = append(parts[i], part)
		}
	}
	return checkCopartitioned(topics, parts)
}

// persist writes the module and job.json, each atomically.
func (m *Manager) persist(j *job, module []byte) error {
	dir := filepath.Join(m.dir, j.spec.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	if module != nil {
		if err := atomicfile.Write(filepath.Join(dir, moduleFile(j.sha)), module); err != nil {
			return fmt.Errorf("host: saving module: %w", err)
		}
	}
	data, err := json.MarshalIndent(persistedJob{Spec: j.spec, State: j.desired, ModuleSHA: j.sha, Deployed: j.deployed, Version: j.version}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "job.json"), data); err != nil {
		return fmt.Errorf("host: saving job: %w", err)
	}
	return nil
}

// startTasks creates and starts one task per input partition.
func (m *Manager) startTasks(j *job) error {
	b := m.cfg.Broker
	spec := j.spec
	info, ok := b.Topic(spec.Inputs[0])
	if !ok {
		return fmt.Errorf("input topic %q does not exist", spec.Inputs[0])
	}
	n := info.Partitions
	for _, in := range spec.Inputs[1:] {
		if info, ok := b.Topic(in); !ok || info.Partitions != n {
			return fmt.Errorf("input topic %q is missing or no longer co-partitioned", in)
		}
	}
	openPartitions := func(topic string) ([]*storage.Partition, error) {
		info, ok := b.Topic(topic)
		if !ok {
			return nil, fmt.Errorf("topic %q does not exist", topic)
		}
		parts := make([]*storage.Partition, info.Partitions)
		for p := range parts {
			part, err := b.Partition(topic, int32(p))
			if err != nil {
				return nil, err
			}
			parts[p] = part
		}
		return parts, nil
	}
	inParts := make([][]*storage.Partition, len(spec.Inputs))
	for i, in := range spec.Inputs {
		parts, err := openPartitions(in)
		if err != nil {
			return err
		}
		inParts[i] = parts
	}
	outParts := make([][]*storage.Partition, len(spec.Outputs))
	for i, o := range spec.Outputs {
		parts, err := openPartitions(o.Topic)
		if err != nil {
			return fmt.Errorf("output: %w", err)
		}
		outParts[i] = parts
	}
	var dlqParts []*storage.Partition
	if spec.OnError == PolicyDeadLetter {
		parts, err := openPartitions(spec.DeadLetterTopic)
		if err != nil {
			return fmt.Errorf("dead-letter topic: %w", err)
		}
		dlqParts = parts
	}
	tableParts := make([][]*storage.Partition, len(spec.Tables))
	for i, tb := range spec.Tables {
		parts, err := openPartitions(tb.Topic)
		if err != nil {
			return fmt.Errorf("table %s: %w", tb.Name, err)
		}
		if int32(len(parts)) != n {
			return fmt.Errorf("table topic %s has %d partitions, the job %d tasks: it is no longer co-partitioned with the inputs", tb.Topic, len(parts), n)
		}
		tableParts[i] = parts
	}
	changelogs := make([][]*storage.Partition, len(spec.Stores))
	for i, s := range spec.Stores {
		parts, err := openPartitions(s.Changelog)
		if err != nil {
			return fmt.Errorf("changelog: %w", err)
		}
		if int32(len(parts)) != n {
			return fmt.Errorf("changelog topic %s has %d partitions, the job %d tasks", s.Changelog, len(parts), n)
		}
		changelogs[i] = parts
	}
	tasks := make([]*task, n)
	for p := int32(0); p < n; p++ {
		inputs := make([]*inputSource, len(spec.Inputs))
		for i, in := range spec.Inputs {
			inputs[i] = &inputSource{index: uint32(i), topic: in, part: inParts[i][p], committed: -1}
		}
		outputs := make([]*outputSink, len(spec.Outputs))
		for i, o := range spec.Outputs {
			outputs[i] = newOutputSink(o.Topic, outParts[i])
		}
		var dlq *outputSink
		if dlqParts != nil {
			dlq = newOutputSink(spec.DeadLetterTopic, dlqParts)
		}
		tables := make([]*inputSource, len(spec.Tables))
		for i, tb := range spec.Tables {
			tables[i] = &inputSource{index: uint32(i), topic: tb.Topic, part: tableParts[i][p], committed: -1,
				table: true, name: tb.Name, fullBootstrap: tb.Bootstrap == BootstrapFull}
		}
		var open openState
		if len(spec.Stores)+len(spec.Tables) > 0 {
			stores := make([]storeSpec, 0, len(spec.Stores)+len(spec.Tables))
			for i, s := range spec.Stores {
				stores = append(stores, storeSpec{name: s.Name, changelog: changelogs[i][p]})
			}
			for i, tb := range spec.Tables {
				stores = append(stores, storeSpec{name: tb.Name, changelog: tableParts[i][p], table: true})
			}
			dir := filepath.Join(m.dir, spec.Name, "state", fmt.Sprint(p))
			open = stateOpener(dir, stores)
		}
		tasks[p] = newTask(j, p, inputs, tables, outputs, dlq, open, m.metrics.forTask(spec.Name, p, inputs))
	}
	m.mu.Lock()
	j.tasks = tasks
	j.err = ""
	m.mu.Unlock()
	for _, t := range tasks {
		go t.run()
	}
	return nil
}

// stopTasks stops a job's tasks, each after a final checkpoint, and waits.
func (m *Manager) stopTasks(j *job) {
	for _, t := range j.tasks {
		t.requestStop()
	}
	for _, t := range j.tasks {
		<-t.done
	}
}

func (m *Manager) setErr(j *job, err error) {
	m.mu.Lock()
	j.err = err.Error()
	m.mu.Unlock()
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Manager) get(name string) (*job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	j := m.jobs[name]
	if j == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchJob, name)
	}
	return j, nil
}

// Stop stops a job's tasks after a final checkpoint. Its state, offsets
// and module stay, so Start continues where it stopped.
func (m *Manager) Stop(ctx context.Context, name string) error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	j, err := m.get(name)
	if err != nil {
		return err
	}
	m.stopTasks(j)
	m.mu.Lock()
	j.tasks = nil
	j.desired = JobStopped
	m.mu.Unlock()
	if err := m.persist(j, nil); err != nil {
		return err
	}
	j.log.Info("job stopped")
	return nil
}

// Start starts a stopped (or failed) job again.
func (m *Manager) Start(ctx context.Context, name string) error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	j, err := m.get(name)
	if err != nil {
		return err
	}
	if len(j.tasks) > 0 {
		return nil // already running
	}
	if err := m.ensureModule(ctx, j); err != nil {
		return err
	}
	m.mu.Lock()
	j.desired = JobRunning
	m.mu.Unlock()
	if err := m.persist(j, nil); err != nil {
		return err
	}
	if err := m.startTasks(j); err != nil {
		m.setErr(j, err)
		m.dropModule(j)
		return err
	}
	j.log.Info("job started")
	return nil
}

// List returns every job's status, sorted by name.
func (m *Manager) List() []JobStatus {
	m.mu.Lock()
	jobs := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j)
	}
	m.mu.Unlock()
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].spec.Name < jobs[b].spec.Name })
	out := make([]JobStatus, len(jobs))
	for i, j := range jobs {
		out[i] = m.statusOf(j)
	}
	return out
}

// Status returns one job's status; errors.Is(err, ErrNoSuchJob) if there
// is no such job.
func (m *Manager) Status(name string) (JobStatus, error) {
	m.mu.Lock()
	j := m.jobs[name]
	m.mu.Unlock()
	if j == nil {
		return JobStatus{}, fmt.Errorf("%w: %q", ErrNoSuchJob, name)
	}
	return m.statusOf(j), nil
}

func (m *Manager) statusOf(j *job) JobStatus {
	m.mu.Lock()
	tasks := j.tasks
	st := JobStatus{
		Name:      j.spec.Name,
		State:     j.desired,
		Error:     j.err,
		Runtime:   j.spec.Runtime,
		ModuleSHA: j.sha,
		Inputs:    j.spec.Inputs,
		Deployed:  j.deployed,
		Version:   j.version,

		LastDeployError: j.deployErr,
	}
	m.mu.Unlock()
	if st.Error != "" {
		st.State = JobFailed
	}
	for _, o := range j.spec.Outputs {
		st.Outputs = append(st.Outputs, o.Topic)
	}
	for _, tb := range j.spec.Tables {
		st.Tables = append(st.Tables, tb.Topic)
	}
	st.Tasks = make([]TaskStatus, 0, len(tasks))
	for _, t := range tasks {
		st.Tasks = append(st.Tasks, t.status())
	}
	return st
}

// Close stops every task after a final checkpoint and releases the
// runtime. Jobs keep their desired state, so a new Manager on the same
// data directory starts the running ones again.
func (m *Manager) Close() error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	jobs := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j)
	}
	m.mu.Unlock()
	for _, j := range jobs {
		for _, t := range j.tasks {
			t.requestStop()
		}
	}
	for _, j := range jobs {
		m.stopTasks(j)
	}
	// The tasks have let go of their modules; now the Manager does.
	for _, j := range jobs {
		j.release()
	}
	close(m.samplerStop)
	<-m.samplerDone
	return m.closeRuntimes()
}

// sampleRates feeds each task's records/s window once a second.
func (m *Manager) sampleRates() {
	defer close(m.samplerDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-m.samplerStop:
			return
		case now := <-tick.C:
			m.mu.Lock()
			var tasks []*task
			for _, j := range m.jobs {
				tasks = append(tasks, j.tasks...)
			}
			m.mu.Unlock()
			for _, t := range tasks {
				t.sampleRate(now)
			}
		}
	}
}
