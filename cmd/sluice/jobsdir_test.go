package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/internal/testguests"
)

// fakeJobs is a jobDeployer that records what the watcher asks for.
type fakeJobs struct {
	mu      sync.Mutex
	calls   []string
	jobs    map[string]host.JobStatus
	params  map[string]map[string]any
	history bool // whether History answers
}

func newFakeJobs() *fakeJobs {
	return &fakeJobs{jobs: map[string]host.JobStatus{}, params: map[string]map[string]any{}, history: true}
}

func (f *fakeJobs) DeployBy(_ context.Context, spec host.JobSpec, module []byte, by string) (host.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := sha256.Sum256(module)
	st := host.JobStatus{Name: spec.Name, State: host.JobRunning, Runtime: spec.Runtime, ModuleSHA: hex.EncodeToString(sum[:]), Inputs: spec.Inputs}
	for _, o := range spec.Outputs {
		st.Outputs = append(st.Outputs, o.Topic)
	}
	f.jobs[spec.Name] = st
	f.params[spec.Name] = spec.Parameters
	p, _ := json.Marshal(spec.Parameters)
	f.calls = append(f.calls, fmt.Sprintf("deploy %s by %s params %s", spec.Name, by, p))
	return st, nil
}

func (f *fakeJobs) NoteFailedDeploy(name, by string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("failed %s by %s", name, by))
}

func (f *fakeJobs) Stop(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.jobs[name]
	if !ok {
		return fmt.Errorf("%w: %q", host.ErrNoSuchJob, name)
	}
	st.State = host.JobStopped
	f.jobs[name] = st
	f.calls = append(f.calls, "stop "+name)
	return nil
}

func (f *fakeJobs) Status(name string) (host.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.jobs[name]
	if !ok {
		return st, fmt.Errorf("%w: %q", host.ErrNoSuchJob, name)
	}
	return st, nil
}

func (f *fakeJobs) History(name string) ([]host.JobVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.history {
		return nil, errors.New("not yet")
	}
	if _, ok := f.jobs[name]; !ok {
		return nil, host.ErrNoSuchJob
	}
	return []host.JobVersion{{Version: 1, Parameters: f.params[name], Result: host.VersionActive}}, nil
}

// take returns and forgets the calls so far.
func (f *fakeJobs) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLog logs to the test's output, shown when it fails.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// jobsDirFixture is a jobs directory with two module files beside it.
type jobsDirFixture struct {
	t      *testing.T
	dir    string
	echo   string // module paths
	failOn string
}

var (
	guestsOnce sync.Once
	echoWasm   []byte
	failOnWasm []byte
)

func newJobsDirFixture(t *testing.T) *jobsDirFixture {
	t.Helper()
	guestsOnce.Do(func() {
		echoWasm = testguests.Build("echo")
		failOnWasm = testguests.Build("fail-on")
	})
	root := t.TempDir()
	fx := &jobsDirFixture{t: t, dir: filepath.Join(root, "jobs"),
		echo: filepath.Join(root, "echo.wasm"), failOn: filepath.Join(root, "fail-on.wasm")}
	for path, data := range map[string][]byte{fx.echo: echoWasm, fx.failOn: failOnWasm} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(fx.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return fx
}

// write writes a job file into the directory (in place, as `>` does).
func (fx *jobsDirFixture) write(name, content string) {
	fx.t.Helper()
	if err := os.WriteFile(filepath.Join(fx.dir, name), []byte(content), 0o644); err != nil {
		fx.t.Fatal(err)
	}
}

// replace writes a job file as editors do: a temporary file renamed over
// the old one.
func (fx *jobsDirFixture) replace(name, content string) {
	fx.t.Helper()
	tmp := filepath.Join(fx.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		fx.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(fx.dir, name)); err != nil {
		fx.t.Fatal(err)
	}
}

func (fx *jobsDirFixture) remove(name string) {
	fx.t.Helper()
	if err := os.Remove(filepath.Join(fx.dir, name)); err != nil {
		fx.t.Fatal(err)
	}
}

func (fx *jobsDirFixture) rename(from, to string) {
	fx.t.Helper()
	if err := os.Rename(filepath.Join(fx.dir, from), filepath.Join(fx.dir, to)); err != nil {
		fx.t.Fatal(err)
	}
}

// touch changes a file's times and nothing else.
func (fx *jobsDirFixture) touch(name string) {
	fx.t.Helper()
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(fx.dir, name), later, later); err != nil {
		fx.t.Fatal(err)
	}
}

func jobYAML(name, module, extra string) string {
	return fmt.Sprintf("name: %s\nmodule: %s\ninputs: [in]\noutputs: [out]\n%s", name, module, extra)
}

func wantCalls(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: calls\n  %s\nwant\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// The scan logic against a fake Manager, one scan per step: what is
// deployed, noted as failed and stopped, and what is left alone.
func TestJobsDirScan(t *testing.T) {
	fx := newJobsDirFixture(t)
	jobs := newFakeJobs()
	w := newJobsDir(fx.dir, jobs, quietLog(), time.Hour)
	ctx := context.Background()
	by := func(name string) string { return "file " + filepath.Join(fx.dir, name) }
	// A change counts once two scans agree on it.
	settle := func() { w.scan(ctx); w.scan(ctx) }

	w.scan(ctx)
	wantCalls(t, "empty directory", jobs.take())

	fx.write("a.yaml", jobYAML("a", fx.echo, ""))
	// Not job files: editor leftovers, other extensions, subdirectories.
	fx.write("a.yaml~", jobYAML("x1", fx.echo, ""))
	fx.write(".#a.yaml", jobYAML("x2", fx.echo, ""))
	fx.write(".a.yaml.swp", jobYAML("x3", fx.echo, ""))
	fx.write("notes.txt", jobYAML("x4", fx.echo, ""))
	if err := os.Mkdir(filepath.Join(fx.dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	fx.write("sub.yaml/b.yaml", jobYAML("x5", fx.echo, ""))
	settle()
	wantCalls(t, "new file", jobs.take(), "deploy a by "+by("a.yaml")+" params null")

	settle()
	fx.touch("a.yaml")
	settle()
	fx.replace("a.yaml", jobYAML("a", fx.echo, ""))
	settle()
	wantCalls(t, "unchanged, touched, rewritten with the same content", jobs.take())

	fx.write("a.yaml", jobYAML("a", fx.echo, "parameters: {n: 3}\n"))
	settle()
	wantCalls(t, "parameter changed", jobs.take(), "deploy a by "+by("a.yaml")+` params {"n":3}`)

	fx.replace("a.yaml", jobYAML("a", fx.failOn, "parameters: {on: never}\n"))
	settle()
	wantCalls(t, "rename-over edit", jobs.take(), "deploy a by "+by("a.yaml")+` params {"on":"never"}`)

	fx.write("a.yaml", jobYAML("a", fx.failOn, "parameters: {on: never}\nlimitz: {memory: 1MiB}\n"))
	settle()
	w.scan(ctx)
	wantCalls(t, "typo, scanned again", jobs.take(), "failed a by "+by("a.yaml"))

	fx.write("a.yaml", jobYAML("a", fx.failOn, "parameters: {on: never}\n"))
	settle()
	wantCalls(t, "typo fixed", jobs.take(), "deploy a by "+by("a.yaml")+` params {"on":"never"}`)

	fx.write("b.yaml", jobYAML("a", fx.echo, ""))
	settle()
	wantCalls(t, "second file for the same job", jobs.take(), "failed a by "+by("b.yaml"))

	// a.yaml goes: b.yaml, refused before, now defines the job.
	fx.remove("a.yaml")
	settle()
	wantCalls(t, "first file removed", jobs.take(), "deploy a by "+by("b.yaml")+" params null")

	fx.rename("b.yaml", "c.yml")
	settle()
	wantCalls(t, "renamed", jobs.take())

	// A rename with an edit: deployed from the new file, not stopped.
	fx.rename("c.yml", "d.yaml")
	fx.write("d.yaml", jobYAML("a", fx.echo, "parameters: {n: 4}\n"))
	settle()
	wantCalls(t, "renamed and edited", jobs.take(), "deploy a by "+by("d.yaml")+` params {"n":4}`)

	// A file changing its job's name: the new job deployed, the old one
	// stopped.
	fx.write("d.yaml", jobYAML("e", fx.echo, ""))
	settle()
	wantCalls(t, "job renamed", jobs.take(), "deploy e by "+by("d.yaml")+" params null", "stop a")

	fx.remove("d.yaml")
	settle()
	wantCalls(t, "removed", jobs.take(), "stop e")
	if st, _ := jobs.Status("e"); st.State != host.JobStopped {
		t.Errorf("e after its file was removed: %s", st.State)
	}

	// A file that never loaded defines no job: removing it stops nothing.
	fx.write("f.yaml", "name: f\n")
	settle()
	fx.remove("f.yaml")
	settle()
	wantCalls(t, "broken file added and removed", jobs.take())
}

// A file caught while it is written in place, or missing for a moment
// while an editor saves it, is not acted on until two scans agree.
func TestJobsDirWaitsForSettledFiles(t *testing.T) {
	fx := newJobsDirFixture(t)
	jobs := newFakeJobs()
	w := newJobsDir(fx.dir, jobs, quietLog(), time.Hour)
	ctx := context.Background()
	by := "file " + filepath.Join(fx.dir, "a.yaml")
	full := jobYAML("a", fx.echo, "parameters: {n: 1}\n")

	w.scan(ctx)
	fx.write("a.yaml", full[:len(full)/2]) // the writer is halfway
	w.scan(ctx)
	wantCalls(t, "half written", jobs.take())
	fx.write("a.yaml", full)
	w.scan(ctx)
	wantCalls(t, "finished, read once", jobs.take())
	w.scan(ctx)
	wantCalls(t, "finished, read twice", jobs.take(), "deploy a by "+by+` params {"n":1}`)

	// Truncated to nothing, then written again with a change.
	fx.write("a.yaml", "")
	w.scan(ctx)
	fx.write("a.yaml", jobYAML("a", fx.echo, "parameters: {n: 2}\n"))
	w.scan(ctx)
	w.scan(ctx)
	wantCalls(t, "emptied then rewritten", jobs.take(), "deploy a by "+by+` params {"n":2}`)

	// Gone for one scan: the job keeps running.
	fx.remove("a.yaml")
	w.scan(ctx)
	fx.write("a.yaml", jobYAML("a", fx.echo, "parameters: {n: 2}\n"))
	w.scan(ctx)
	w.scan(ctx)
	wantCalls(t, "missing for one scan", jobs.take())

	// Gone for two: stopped.
	fx.remove("a.yaml")
	w.scan(ctx)
	wantCalls(t, "removed, read once", jobs.take())
	w.scan(ctx)
	wantCalls(t, "removed, read twice", jobs.take(), "stop a")
}

// At startup, jobs the Manager already runs as their files say are left
// alone; the others are deployed.
func TestJobsDirStartup(t *testing.T) {
	for _, history := range []bool{true, false} {
		t.Run(fmt.Sprintf("history=%v", history), func(t *testing.T) {
			fx := newJobsDirFixture(t)
			jobs := newFakeJobs()
			jobs.history = history
			ctx := context.Background()
			for _, j := range []struct{ name, module, extra string }{
				{"same", fx.echo, "parameters: {n: 1}\n"},
				{"params", fx.echo, "parameters: {n: 1}\n"},
				{"module", fx.echo, ""},
				{"stopped", fx.echo, ""},
			} {
				spec, err := host.ParseJob(filepath.Join(fx.dir, "x.yaml"), []byte(jobYAML(j.name, j.module, j.extra)))
				if err != nil {
					t.Fatal(err)
				}
				mod, _ := os.ReadFile(j.module)
				jobs.DeployBy(ctx, spec, mod, "cli")
			}
			jobs.Stop(ctx, "stopped")
			jobs.take()

			fx.write("same.yaml", jobYAML("same", fx.echo, "parameters: {n: 1}\n"))
			fx.write("params.yaml", jobYAML("params", fx.echo, "parameters: {n: 2}\n"))
			fx.write("module.yaml", jobYAML("module", fx.failOn, ""))
			fx.write("stopped.yaml", jobYAML("stopped", fx.echo, ""))
			fx.write("new.yaml", jobYAML("new", fx.echo, ""))
			w := newJobsDir(fx.dir, jobs, quietLog(), time.Hour)
			w.scan(ctx)
			by := func(name string) string { return "file " + filepath.Join(fx.dir, name) }
			want := []string{
				"deploy module by " + by("module.yaml") + " params null",
				"deploy new by " + by("new.yaml") + " params null",
			}
			if history {
				want = append(want, "deploy params by "+by("params.yaml")+` params {"n":2}`)
			}
			want = append(want, "deploy stopped by "+by("stopped.yaml")+" params null")
			wantCalls(t, "first scan", jobs.take(), want...)
		})
	}
}

func TestJobsDirConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "")
	for _, tc := range []struct {
		value, want string
	}{
		{dir, ""},
		{"", ""},
		{filepath.Join(dir, "nope"), `jobs-dir: "` + filepath.Join(dir, "nope") + `": no such file or directory`},
		{file, `jobs-dir: "` + file + `" is not a directory`},
	} {
		t.Setenv("SLUICE_JOBS_DIR", tc.value)
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		addServeFlags(fs)
		v, err := newServeViper(fs)
		if err != nil {
			t.Fatal(err)
		}
		c, err := loadServeConfig(v)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("jobs-dir %q: %v", tc.value, err)
		case tc.want == "" && c.JobsDir != tc.value:
			t.Errorf("jobs-dir %q: config has %q", tc.value, c.JobsDir)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("jobs-dir %q: err %v, want %q", tc.value, err, tc.want)
		}
	}
}

// The watcher driving a real Manager: deploy, in-place changes, a broken
// file that leaves the running version alone, rename-over edits, a touch,
// and removal.
func TestJobsDirNode(t *testing.T) {
	fx := newJobsDirFixture(t)
	ctx := context.Background()
	n, err := startProcessingNode(ctx, t.TempDir(), storage.FlushOS, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.createTopic("in", 2); err != nil {
		t.Fatal(err)
	}
	sha := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	echoSHA, failOnSHA := sha(echoWasm), sha(failOnWasm)

	fx.write("count.yaml", jobYAML("count", "../echo.wasm", ""))
	w := newJobsDir(fx.dir, n.jobs, testLog(t), 20*time.Millisecond)
	w.start(ctx)
	defer w.stop()

	waitFor := func(what string, ok func(host.JobStatus) bool) host.JobStatus {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			st, err := n.jobs.Status("count")
			if err == nil && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: job status %+v, %v", what, st, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	running := func(sha string) func(host.JobStatus) bool {
		return func(st host.JobStatus) bool {
			return st.State == host.JobRunning && st.ModuleSHA == sha && len(st.Tasks) == 2
		}
	}
	waitFor("new file", running(echoSHA))

	fx.write("count.yaml", jobYAML("count", "../fail-on.wasm", "parameters: {on: never}\n"))
	waitFor("module changed", running(failOnSHA))

	fx.write("count.yaml", jobYAML("count", "../echo.wasm", "parameters: {on: never}\ninptus: [in]\n"))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		h, err := n.jobs.History("count")
		if err != nil {
			t.Fatal(err)
		}
		last := h[len(h)-1]
		if last.Result == host.VersionFailed {
			if !strings.Contains(last.Error, "inptus") || last.By != "file "+filepath.Join(fx.dir, "count.yaml") {
				t.Errorf("failed version: %+v", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed version in the history after a typo: %+v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := waitFor("after the typo", running(failOnSHA)); st.State != host.JobRunning {
		t.Errorf("state after the typo: %s", st.State)
	}

	fx.replace("count.yaml", jobYAML("count", "../echo.wasm", ""))
	st := waitFor("rename-over edit", running(echoSHA))

	versions := func() int {
		h, err := n.jobs.History("count")
		if err != nil {
			t.Fatal(err)
		}
		return len(h)
	}
	before := versions()
	fx.touch("count.yaml")
	time.Sleep(200 * time.Millisecond) // ten polls
	if after, st2 := versions(), waitFor("touched", running(echoSHA)); after != before || !st2.Deployed.Equal(st.Deployed) {
		t.Errorf("touching the file redeployed: %d versions, was %d; deployed %v, was %v", after, before, st2.Deployed, st.Deployed)
	}

	fx.remove("count.yaml")
	waitFor("removed", func(st host.JobStatus) bool { return st.State == host.JobStopped })
}
