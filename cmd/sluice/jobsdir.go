package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/host"
)

// jobsDirInterval is how often `sluice serve --jobs-dir` looks at the
// directory. Polling (rather than fsnotify, which sluice does not depend
// on) costs one ReadDir and a read of each small job file per interval, and
// a second is well below how fast anyone edits a job file.
const jobsDirInterval = time.Second

// jobDeployer is the part of *host.Manager the jobs directory drives. It is
// an interface so that the scan logic can be tested without a node.
type jobDeployer interface {
	DeployBy(ctx context.Context, spec host.JobSpec, module []byte, by string) (host.JobStatus, error)
	NoteFailedDeploy(name, by string, err error)
	Stop(ctx context.Context, name string) error
	Status(name string) (host.JobStatus, error)
	History(name string) ([]host.JobVersion, error)
}

// jobsDir keeps a node's jobs in step with a directory of job files, so
// that jobs can be managed by configuration management or GitOps (drop a
// file in, edit it, delete it) instead of `sluice job deploy`:
//
//   - every *.yaml or *.yml file directly in the directory is a job file
//     (dotfiles and editor leftovers such as "x.yaml~" are not);
//   - a change counts once two scans in a row read the same thing, so that
//     a file caught while it is being written in place (`cat > x.yaml`,
//     many editors) is neither deployed nor failed half written, and a
//     file that is briefly missing while an editor saves is not stopped;
//   - a file is handled again only when its content changes (its sha256),
//     so an editor's write-to-temp-then-rename is seen as one change and a
//     touch without a change does nothing. Only the job file's bytes count:
//     to deploy a rebuilt module, point module: at the new file (or change
//     anything else in the job file);
//   - a new or changed file is deployed (in place over the running version);
//     a file that does not load, or names a job another file already
//     defines, is not, and the running version keeps running;
//   - a removed file stops its job, whose state and changelog stay (until
//     `sluice job delete`), unless another file still defines the job.
//
// A file that failed is not retried until its content changes, so that a
// broken file does not fill the log and the job's history every second;
// save it again (with a change) or use `sluice job deploy`.
type jobsDir struct {
	dir      string // as configured; "by" and log paths are under it
	jobs     jobDeployer
	log      *slog.Logger
	interval time.Duration
	// load reads a job file and its module; loadJob, replaced in tests.
	load func(ctx context.Context, file string) (host.JobSpec, []byte, error)

	// files is what the last scans handled, by base name. Only the scanning
	// goroutine touches it.
	files map[string]*jobFile
	// seen is what the previous scan read (base name → content hash),
	// against which settled tells a finished change from one in progress.
	seen  map[string]string
	first bool // the next scan is the first since the node started

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// jobFile is what the watcher remembers of one file.
type jobFile struct {
	hash string // sha256 of the content last handled, failed or not
	// job is the job the file defined when it last loaded, "" if it never
	// did. A later failure is noted in that job's history, and removing
	// the file stops it.
	job string
	// wants is the job the file's content names when another file already
	// defined it: the file takes the job over if that file lets it go.
	wants string
}

// newJobsDir returns a watcher of dir driving jobs; start runs it.
func newJobsDir(dir string, jobs jobDeployer, log *slog.Logger, interval time.Duration) *jobsDir {
	w := &jobsDir{
		dir:      dir,
		jobs:     jobs,
		log:      log.With("jobs_dir", dir),
		interval: interval,
		files:    make(map[string]*jobFile),
		first:    true,
	}
	w.load = func(ctx context.Context, file string) (host.JobSpec, []byte, error) {
		return loadJob(ctx, logWriter{w.log, "file", file}, file)
	}
	return w
}

// start scans the directory once before returning, so that the jobs the
// files define are deployed when the node reports ready, then every
// interval until stop.
func (w *jobsDir) start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	w.scan(ctx)
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.scan(ctx)
			}
		}
	}()
}

// stop ends the polling and waits for a scan in progress (whose deploy is
// cancelled), so that nothing reaches the Manager while it closes.
func (w *jobsDir) stop() {
	w.once.Do(func() {
		if w.cancel != nil {
			w.cancel()
			<-w.done
		}
	})
}

// isJobFileName says which directory entries are job files: YAML files
// that are not hidden (which also leaves out Emacs' ".#x.yaml" locks and
// Vim's ".x.yaml.swp") and not backups ("x.yaml~" fails the suffix test).
func isJobFileName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// read returns the job files in the directory with their content hashes.
// A file that vanishes between listing and reading is simply absent: the
// next scan sees the directory as it settled.
func (w *jobsDir) read() (map[string]string, error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, err
	}
	hashes := make(map[string]string)
	for _, e := range entries {
		if !isJobFileName(e.Name()) {
			continue
		}
		path := filepath.Join(w.dir, e.Name())
		// Stat follows symlinks, so a linked job file counts and a linked
		// directory does not.
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				w.log.Warn("cannot read job file", "file", path, "err", err)
			}
			continue
		}
		sum := sha256.Sum256(data)
		hashes[e.Name()] = hex.EncodeToString(sum[:])
	}
	return hashes, nil
}

// scan handles what changed since the last scan: deploys first, then
// stops, so that a file renamed (or a job moved from one file to another)
// is seen as the job still defined and is not stopped.
func (w *jobsDir) scan(ctx context.Context) {
	observed, err := w.read()
	if err != nil {
		w.log.Warn("cannot read the jobs directory", "err", err)
		return
	}
	first := w.first
	w.first = false
	current := w.settled(observed, first)

	var removed []string
	for name := range w.files {
		if _, ok := current[name]; !ok {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	var changed []string
	for name, hash := range current {
		if f, ok := w.files[name]; !ok || f.hash != hash {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)

	// A pure rename (the content of a removed file under a new name)
	// moves the file's record over instead of deploying the same job
	// again, which would add a version to its history for nothing.
	for i := 0; i < len(changed); i++ {
		name := changed[i]
		if _, known := w.files[name]; known {
			continue
		}
		for j, old := range removed {
			if f := w.files[old]; f.hash == current[name] {
				w.files[name] = f
				delete(w.files, old)
				removed = slices.Delete(removed, j, j+1)
				changed = slices.Delete(changed, i, i+1)
				i--
				w.log.Info("job file renamed", "file", w.path(name), "was", w.path(old), "job", f.job)
				break
			}
		}
	}

	// Jobs left undefined by this scan: those of removed files, and those
	// a changed file defined before it changed its name: line.
	var orphans []string
	for _, name := range removed {
		if job := w.files[name].job; job != "" {
			orphans = append(orphans, job)
		}
		delete(w.files, name)
	}
	for _, name := range changed {
		if ctx.Err() != nil {
			return
		}
		before := ""
		if f := w.files[name]; f != nil {
			before = f.job
		}
		w.handle(ctx, name, current[name], first)
		if before != "" && w.files[name].job != before {
			orphans = append(orphans, before)
		}
	}
	for _, job := range orphans {
		if ctx.Err() != nil {
			return
		}
		if w.owner(job, "") != "" {
			continue
		}
		if heir := w.heir(job); heir != "" {
			w.handle(ctx, heir, w.files[heir].hash, false)
			if w.files[heir].job == job {
				continue
			}
		}
		w.stopJob(ctx, job)
	}
}

// settled returns the directory as this scan should act on it: a file
// whose content (or absence) is the same as the previous scan read is
// taken as it is now; one that differs is still being written, moved or
// saved, and is taken as it was last handled, which makes it no change
// this time. The first scan after a start takes the directory as it is,
// so that the node is ready with its jobs deployed.
func (w *jobsDir) settled(observed map[string]string, first bool) map[string]string {
	prev := w.seen
	w.seen = observed
	if first {
		return observed
	}
	current := make(map[string]string, len(observed))
	for name, hash := range observed {
		if prev[name] == hash {
			current[name] = hash
		} else if f, ok := w.files[name]; ok {
			current[name] = f.hash
		}
	}
	for name, f := range w.files {
		if _, now := observed[name]; now {
			continue
		}
		if _, before := prev[name]; before {
			current[name] = f.hash // just vanished: gone if still gone next scan
		}
	}
	return current
}

// path is a file's path as the node's operator wrote the directory, for
// logs and the job history ("file jobs/count.yaml").
func (w *jobsDir) path(name string) string { return filepath.Join(w.dir, name) }

// owner returns the file other than except that defines job, if any.
func (w *jobsDir) owner(job, except string) string {
	var names []string
	for name, f := range w.files {
		if name != except && f.job == job {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[0]
}

// heir returns a file that was refused because another file defined job.
func (w *jobsDir) heir(job string) string {
	var names []string
	for name, f := range w.files {
		if f.job == "" && f.wants == job {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[0]
}

// handle loads a new or changed file and deploys its job.
func (w *jobsDir) handle(ctx context.Context, name, hash string, first bool) {
	f := w.files[name]
	if f == nil {
		f = &jobFile{}
		w.files[name] = f
	}
	f.hash = hash
	f.wants = ""
	path := w.path(name)
	by := "file " + path

	spec, module, err := w.load(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down mid-build: let the next start try again.
			f.hash = ""
			return
		}
		if f.job == "" {
			w.log.Warn("job file not deployed", "file", path, "err", err)
			return
		}
		w.log.Warn("job file not deployed; the running version keeps running", "file", path, "job", f.job, "err", err)
		w.jobs.NoteFailedDeploy(f.job, by, err)
		return
	}
	if other := w.owner(spec.Name, name); other != "" {
		err := fmt.Errorf("job %s is already defined by %s", spec.Name, w.path(other))
		w.log.Warn("job file not deployed", "file", path, "job", spec.Name, "err", err)
		w.jobs.NoteFailedDeploy(spec.Name, by, err)
		// This file defines no job of its own: removing it must not stop
		// the other file's job.
		f.job = ""
		f.wants = spec.Name
		return
	}
	f.job = spec.Name
	sum := sha256.Sum256(module)
	sha := hex.EncodeToString(sum[:])

	// The Manager keeps jobs across restarts, so at startup a file that
	// matches the job it already runs needs nothing; deploying it again
	// would swap every task and add a version to the history. The job
	// Only a running job counts: the directory says the job runs, and a
	// job stopped because its file was removed must start when the file
	// is back.
	if first && w.upToDate(spec, sha) {
		w.log.Debug("job file matches the deployed job", "file", path, "job", spec.Name)
		return
	}

	dctx, cancel := context.WithTimeout(ctx, deployTimeout)
	defer cancel()
	st, err := w.jobs.DeployBy(dctx, spec, module, by)
	if err != nil {
		if ctx.Err() != nil {
			f.hash = ""
			return
		}
		// The Manager records the failure in the job's history itself and
		// leaves the running version running.
		w.log.Warn("job file not deployed", "file", path, "job", spec.Name, "err", err)
		return
	}
	w.log.Info("job file deployed", "file", path, "job", spec.Name, "version", latestVersion(w.jobs, spec.Name),
		"module_sha256", st.ModuleSHA, "tasks", len(st.Tasks))
}

// upToDate reports whether the Manager runs job spec with this module and
// these parameters, inputs and outputs already. Parameters come from the
// job's history; where that is not available, the rest must do.
func (w *jobsDir) upToDate(spec host.JobSpec, sha string) bool {
	st, err := w.jobs.Status(spec.Name)
	if err != nil || st.State != host.JobRunning || st.ModuleSHA != sha || st.Runtime != spec.Runtime || !slices.Equal(st.Inputs, spec.Inputs) {
		return false
	}
	outputs := make([]string, len(spec.Outputs))
	for i, o := range spec.Outputs {
		outputs[i] = o.Topic
	}
	if !slices.Equal(st.Outputs, outputs) {
		return false
	}
	versions, err := w.jobs.History(spec.Name)
	if err != nil {
		return true
	}
	for i := len(versions) - 1; i >= 0; i-- {
		if versions[i].Result == host.VersionActive {
			return sameJSON(versions[i].Parameters, spec.Parameters)
		}
	}
	return true
}

// sameJSON compares parameters as the operator receives them (JSON), so
// that 3 from YAML equals 3.0 read back from the history.
func sameJSON(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

// latestVersion is the job's newest version number for the log, 0 if the
// history is not available.
func latestVersion(jobs jobDeployer, name string) int {
	versions, err := jobs.History(name)
	if err != nil || len(versions) == 0 {
		return 0
	}
	return versions[len(versions)-1].Version
}

// stopJob stops a job no file defines any more. Its state stays, so
// putting the file back continues where it stopped.
func (w *jobsDir) stopJob(ctx context.Context, job string) {
	sctx, cancel := context.WithTimeout(ctx, jobAdminTimeout)
	defer cancel()
	err := w.jobs.Stop(sctx, job)
	switch {
	case err == nil:
		w.log.Info("job file removed; job stopped", "job", job)
	case errors.Is(err, host.ErrNoSuchJob):
		// Never deployed (its file failed), or deleted meanwhile.
	default:
		w.log.Warn("job file removed; cannot stop the job", "job", job, "err", err)
	}
}

// logWriter turns loadJob's progress lines (a source build) into log
// records.
type logWriter struct {
	log      *slog.Logger
	key, val string
}

func (l logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			l.log.Info(line, l.key, l.val)
		}
	}
	return len(p), nil
}
