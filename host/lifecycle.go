package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/internal/atomicfile"
)

// Versions, hot swap, rollback and delete: what happens to a job after its
// first deployment. Every change goes through deploy's checks (compile,
// ABI validation, an init call on a scratch instance) before anything that
// runs is touched, and every attempt, failed ones included, gets a version
// in the job's history (history.json next to job.json).

// keepModules is how many versions' modules a job keeps for rollback.
const keepModules = 10

// swapWait bounds how long Deploy waits for a task to reach a batch
// boundary and change versions. A task still busy after it (restoring a
// large store, say) changes when it gets there; Deploy does not wait.
const swapWait = 30 * time.Second

// DeployBy is Deploy with the origin of the deployment recorded in the
// job's history ("cli", "api", "file PATH"). A deployment that fails is
// recorded too, as a failed version, when the job exists; the running
// version is untouched.
func (m *Manager) DeployBy(ctx context.Context, spec JobSpec, module []byte, by string) (JobStatus, error) {
	st, err := m.deploy(ctx, spec, module, by)
	if err != nil && !errors.Is(err, ErrClosed) {
		m.noteFailure(spec.Name, by, module, spec.Parameters, err)
	}
	return st, err
}

// NoteFailedDeploy records in a job's history a deployment that failed
// before it reached the Manager (a job file that does not parse), so that
// `sluice job history` shows it. Unknown jobs are ignored.
func (m *Manager) NoteFailedDeploy(name, by string, err error) {
	m.noteFailure(name, by, nil, nil, err)
}

func (m *Manager) noteFailure(name, by string, module []byte, params map[string]any, cause error) {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	m.mu.Lock()
	j, exists := m.jobs[name]
	m.mu.Unlock()
	if !exists {
		return
	}
	m.metrics.swapFails.WithLabelValues(name).Inc()
	hist, err := m.readHistory(name)
	if err != nil {
		m.log.Warn("cannot record a failed deployment", "job", name, "err", err)
		return
	}
	v := JobVersion{Version: hist.next(), Parameters: params, At: time.Now().UTC(), By: by, Result: VersionFailed, Error: cause.Error()}
	if module != nil {
		v.ModuleSHA = sha256Hex(module)
	}
	if err := m.writeHistory(name, hist.add(historyEntry{JobVersion: v})); err != nil {
		m.log.Warn("cannot record a failed deployment", "job", name, "err", err)
	}
	m.mu.Lock()
	j.deployErr = fmt.Sprintf("version %d (%s) refused: %s", v.Version, by, v.Error)
	m.mu.Unlock()
	m.log.Warn("new version refused; the job keeps its running version", "job", name, "by", by, "err", cause)
}

// swapIn makes j, a new version of the running job old, take over its
// tasks in place. It runs under deployMu.
func (m *Manager) swapIn(old, j *job, plan *topicPlan, module []byte, hist history, entry historyEntry) (JobStatus, error) {
	if err := plan.create(m.cfg.Broker); err != nil {
		return JobStatus{}, err
	}
	if err := m.persist(j, module); err != nil {
		return JobStatus{}, err
	}
	j.tasks = old.tasks
	pause, err := swapTasks(j.tasks, j)
	if err != nil {
		// Some task could not start the new version: every task goes back
		// to the old one, so that the job does not run two versions.
		swapTasks(j.tasks, old)
		_ = m.persist(old, nil)
		return JobStatus{}, fmt.Errorf("%w: the new version does not start in its tasks: %v", ErrInvalidJob, err)
	}
	entry.SwapPause = pause
	if err := m.writeHistory(j.spec.Name, hist.add(entry)); err != nil {
		m.log.Warn("cannot record the new version in the job's history", "job", j.spec.Name, "err", err)
	}
	m.mu.Lock()
	m.jobs[j.spec.Name] = j
	m.mu.Unlock()
	// The Manager lets go of the old version's module; the tasks still
	// running it (those past swapWait) hold it until they change, so it is
	// closed once the last of them has.
	old.release()
	m.pruneModules(j.spec.Name)
	j.log.Info("job changed to a new version in place", "version", j.version, "module_sha256", j.sha,
		"tasks", len(j.tasks), "longest_pause", pause, "by", entry.By)
	return m.statusOf(j), nil
}

// swapTasks asks the tasks to change to version j one after the other,
// each within swapWait, and returns the longest pause and the first
// failure. One at a time, because instantiating is CPU work: tasks that
// all swap at once queue for the cores and each pauses for longer.
func swapTasks(tasks []*task, j *job) (time.Duration, error) {
	deadline := time.NewTimer(swapWait)
	defer deadline.Stop()
	var longest time.Duration
	for i, t := range tasks {
		done := make(chan swapResult, 1)
		t.requestSwap(swapRequest{job: j, done: done})
		select {
		case r := <-done:
			longest = max(longest, r.pause)
			if r.err != nil {
				return longest, fmt.Errorf("task %d: %w", t.partition, r.err)
			}
		case <-t.done:
		case <-deadline.C:
			// t changes when it reaches a batch boundary; so do the
			// tasks not asked yet.
			for _, rest := range tasks[i+1:] {
				rest.requestSwap(swapRequest{job: j, done: make(chan swapResult, 1)})
			}
			return longest, nil
		}
	}
	return longest, nil
}

// sameTopics refuses a new version that would change what the job reads,
// writes or keeps: its offsets, state and outputs belong to those topics,
// so such a change is a new job.
func sameTopics(old, spec JobSpec) error {
	outputs := func(s JobSpec) []OutputSpec { return s.Outputs }
	problem := ""
	switch {
	case !slices.Equal(old.Inputs, spec.Inputs):
		problem = fmt.Sprintf("inputs %v -> %v", old.Inputs, spec.Inputs)
	case !slices.EqualFunc(outputs(old), outputs(spec), func(a, b OutputSpec) bool { return a.Topic == b.Topic }):
		problem = "outputs differ"
	case !slices.EqualFunc(old.Stores, spec.Stores, func(a, b StoreSpec) bool { return a.Name == b.Name && a.Changelog == b.Changelog }):
		problem = "stores differ"
	case !slices.EqualFunc(old.Tables, spec.Tables, func(a, b TableSpec) bool { return a.Name == b.Name && a.Topic == b.Topic }):
		problem = "tables differ"
	case old.DeadLetterTopic != spec.DeadLetterTopic || (old.OnError == PolicyDeadLetter) != (spec.OnError == PolicyDeadLetter):
		problem = "the dead-letter topic differs"
	}
	if problem == "" {
		return nil
	}
	return fmt.Errorf("%w: job %s: a new version cannot change the job's topics (%s); that is a new job: deploy it under another name, or `sluice job delete %s` first",
		ErrInvalidJob, old.Name, problem, old.Name)
}

// History returns a job's versions, oldest first.
func (m *Manager) History(name string) ([]JobVersion, error) {
	if _, err := m.get(name); err != nil {
		return nil, err
	}
	hist, err := m.readHistory(name)
	if err != nil {
		return nil, err
	}
	vs := make([]JobVersion, len(hist.Versions))
	for i, e := range hist.Versions {
		vs[i] = e.JobVersion
	}
	return vs, nil
}

// Rollback deploys an earlier version of a job again (its module and job
// settings as recorded), as a new version. Version 0 means the newest
// version before the active one that did not fail.
func (m *Manager) Rollback(ctx context.Context, name string, version int, by string) (JobStatus, error) {
	j, err := m.get(name)
	if err != nil {
		return JobStatus{}, err
	}
	hist, err := m.readHistory(name)
	if err != nil {
		return JobStatus{}, err
	}
	target := hist.find(version, j.version)
	if target == nil {
		if version == 0 {
			return JobStatus{}, fmt.Errorf("%w: job %s has no earlier version that ran", ErrNoSuchVersion, name)
		}
		return JobStatus{}, fmt.Errorf("%w: job %s has no version %d that ran", ErrNoSuchVersion, name, version)
	}
	module, err := os.ReadFile(filepath.Join(m.dir, name, moduleFile(target.ModuleSHA)))
	if err != nil {
		return JobStatus{}, fmt.Errorf("%w: the module of version %d of job %s is no longer kept (the last %d versions' are)",
			ErrNoSuchVersion, target.Version, name, keepModules)
	}
	if by == "" {
		by = "api"
	}
	return m.DeployBy(ctx, *target.Spec, module, fmt.Sprintf("%s: rollback to %d", by, target.Version))
}

// Delete stops a job and removes it: its record, history, modules, local
// state, changelog topics and checkpoints. Its output and dead-letter
// topics stay.
func (m *Manager) Delete(ctx context.Context, name string) error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	j, err := m.get(name)
	if err != nil {
		return err
	}
	m.stopTasks(j)
	m.mu.Lock()
	delete(m.jobs, name)
	m.mu.Unlock()
	j.release() // the tasks have let go of it: this closes the module
	var errs []error
	for _, s := range j.spec.Stores {
		if err := m.cfg.Broker.DeleteTopic(s.Changelog); err != nil && !errors.Is(err, broker.ErrUnknownTopic) {
			errs = append(errs, fmt.Errorf("changelog topic %s: %w", s.Changelog, err))
		}
	}
	if _, err := m.cfg.Offsets.DeleteGroup(j.group); err != nil {
		errs = append(errs, fmt.Errorf("checkpoints (group %s): %w", j.group, err))
	}
	if err := os.RemoveAll(filepath.Join(m.dir, name)); err != nil {
		errs = append(errs, err)
	}
	j.log.Info("job deleted")
	return errors.Join(errs...)
}

// history is history.json.
type history struct {
	Versions []historyEntry `json:"versions"`
}

// historyEntry is a version with what Rollback needs to deploy it again.
type historyEntry struct {
	JobVersion
	Spec *JobSpec `json:"spec,omitempty"`
}

func (h history) next() int {
	if len(h.Versions) == 0 {
		return 1
	}
	return h.Versions[len(h.Versions)-1].Version + 1
}

// add appends e; a new active version replaces the previous one.
func (h history) add(e historyEntry) history {
	vs := slices.Clone(h.Versions)
	if e.Result == VersionActive {
		for i := range vs {
			if vs[i].Result == VersionActive {
				vs[i].Result = VersionReplaced
			}
		}
	}
	return history{Versions: append(vs, e)}
}

// find returns the version to roll back to: version, or with 0 the newest
// version before active that ran. Failed versions never qualify.
func (h history) find(version, active int) *historyEntry {
	for i := len(h.Versions) - 1; i >= 0; i-- {
		e := &h.Versions[i]
		if e.Result == VersionFailed || e.Spec == nil {
			continue
		}
		if version == e.Version || version == 0 && e.Version < active {
			return e
		}
	}
	return nil
}

func (m *Manager) readHistory(name string) (history, error) {
	var h history
	data, err := os.ReadFile(filepath.Join(m.dir, name, "history.json"))
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("host: job %s history: %w", name, err)
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("host: job %s history.json: %w", name, err)
	}
	return h, nil
}

func (m *Manager) writeHistory(name string, h history) error {
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(m.dir, name), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(m.dir, name, "history.json"), data)
}

// pruneModules deletes the module files of versions too old to roll back
// to, keeping the newest keepModules that ran (and the active one).
func (m *Manager) pruneModules(name string) {
	hist, err := m.readHistory(name)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for i := len(hist.Versions) - 1; i >= 0 && len(keep) < keepModules; i-- {
		if e := hist.Versions[i]; e.Result != VersionFailed && e.ModuleSHA != "" {
			keep[e.ModuleSHA] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(m.dir, name))
	if err != nil {
		return
	}
	for _, e := range entries {
		sha, ok := strings.CutPrefix(e.Name(), "module-")
		if sha, ok2 := strings.CutSuffix(sha, ".wasm"); ok && ok2 && !keep[sha] {
			os.Remove(filepath.Join(m.dir, name, e.Name()))
		}
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
