package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/testguests"
)

// echoJobFile writes the echo test operator and a job file deploying it
// (in -> out) into a temporary directory and returns the file's path.
func echoJobFile(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo.wasm"), testguests.Build("echo"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "echo.yaml")
	yaml := "name: echo\nmodule: echo.wasm\ninputs: [in]\noutputs: [out]\n" + extra
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// job runs `sluice job ...` against the node's admin API.
func (n *node) job(args ...string) result {
	n.t.Helper()
	return sluice(n.t, "", append(append([]string{"job"}, args...), "--admin", n.metrics)...)
}

func (n *node) jobStatus(name string) host.JobStatus {
	n.t.Helper()
	r := n.job("status", name, "--json")
	if r.code != 0 {
		n.t.Fatalf("job status %s: %s", name, r)
	}
	var st host.JobStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		n.t.Fatalf("job status --json: %v\n%s", err, r.stdout)
	}
	return st
}

// The job commands against a running node: a refused deploy shows the
// node's message as it is, then deploy, list, status, stop and start.
func TestJobCommands(t *testing.T) {
	dataDir := t.TempDir()
	n := startNode(t, dataDir)
	if n.ready["admin"] != n.metrics {
		t.Errorf("ready line: admin %v, want the HTTP listener %s", n.ready["admin"], n.metrics)
	}
	file := echoJobFile(t, "")

	r := n.job("deploy", file)
	if r.code != 1 || !strings.Contains(r.stderr, `input topic "in" does not exist`) {
		t.Fatalf("deploy without the input topic: %s", r)
	}
	n.ok("", "topic", "create", "in", "--partitions", "2")
	r = n.job("deploy", file)
	if r.code != 0 || !regexp.MustCompile(`^deployed echo: 2 tasks, in -> out, module sha256:[0-9a-f]{64}\n$`).MatchString(r.stdout) {
		t.Fatalf("deploy: %s", r)
	}

	const records = 200
	var lines strings.Builder
	for i := 0; i < records; i++ {
		fmt.Fprintf(&lines, "record %d\n", i)
	}
	n.ok(lines.String(), "produce", "in", "--partition", "1")
	deadline := time.Now().Add(time.Minute)
	for {
		st := n.jobStatus("echo")
		t2 := totals(st)
		if t2.in == records && t2.out == records && t2.lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo did not process %d records with lag 0 within a minute: %+v", records, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := n.ok("", "consume", "out", "--from-beginning"); strings.Count(out, "record ") != records {
		t.Errorf("out holds:\n%s", out)
	}

	r = n.job("list")
	if r.code != 0 || !regexp.MustCompile(`^NAME\s+STATE\s+RUNTIME\s+TASKS\s+RECORDS IN\s+RECORDS OUT\s+LAG\necho\s+running\s+wazero\s+2/2\s+200\s+200\s+0\n$`).MatchString(r.stdout) {
		t.Errorf("job list: %s", r)
	}
	r = n.job("status", "echo")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^State:\s+running$`),
		regexp.MustCompile(`(?m)^Tasks:\s+2 running of 2; 200 records in, 200 out, \d+ records/s, lag 0$`),
		regexp.MustCompile(`(?m)^PARTITION\s+STATE\s+INPUT\s+POSITION\s+COMMITTED\s+END\s+LAG\s+IN\s+OUT\s+RECORDS/S\s+RESTARTS\s+RESTORE\s+LAST ERROR$`),
		regexp.MustCompile(`(?m)^0\s+running\s+in\s+0\s+-\s+0\s+0\s+0\s+0\s+`),
		regexp.MustCompile(`(?m)^1\s+running\s+in\s+200\s+200\s+200\s+0\s+200\s+200\s+`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("job status lacks %s:\n%s", want, r)
		}
	}

	if r = n.job("stop", "echo"); r.code != 0 || r.stdout != "echo: stopped\n" {
		t.Errorf("job stop: %s", r)
	}
	if st := n.jobStatus("echo"); st.State != host.JobStopped {
		t.Errorf("after stop: %+v", st)
	}
	if r = n.job("start", "echo"); r.code != 0 || r.stdout != "echo: running\n" {
		t.Errorf("job start: %s", r)
	}

	for _, args := range [][]string{{"status", "nope"}, {"stop", "nope"}, {"start", "nope"}} {
		r = n.job(args...)
		if r.code != 1 || !strings.Contains(r.stderr, `no such job: "nope"`) {
			t.Errorf("job %s: %s", strings.Join(args, " "), r)
		}
	}

	// A job file naming a source directory is built on the way.
	dir := t.TempDir()
	src := filepath.Join(dir, "fromsource.yaml")
	os.WriteFile(src, []byte("name: fromsource\nsource: "+testguests.Dir("echo")+"\ninputs: [in]\noutputs: [out2]\n"), 0o644)
	r = n.job("deploy", src)
	if r.code != 0 || !strings.Contains(r.stderr, "building "+testguests.Dir("echo")) || !strings.HasPrefix(r.stdout, "deployed fromsource: 2 tasks") {
		t.Errorf("deploy from source: %s", r)
	}

	// The node stops cleanly with jobs running and brings them back.
	if err := n.terminate(); err != nil {
		t.Fatalf("SIGTERM with jobs running: %v\n%s", err, n.log())
	}
	n = startNode(t, dataDir)
	running := regexp.MustCompile(`(?m)^echo\s+running\s+wazero\s+2/2\s.*\nfromsource\s+running\s+wazero\s+2/2\s`)
	for deadline := time.Now().Add(30 * time.Second); ; {
		r = n.job("list")
		if running.MatchString(r.stdout) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a restart, job list does not show both jobs with 2/2 tasks running: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Mistakes in the job file are reported before any node is contacted,
// naming the file and the key; a node that is not there gets advice.
func TestJobDeployErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	file := echoJobFile(t, "modul: x.wasm\n")
	r := sluice(t, "", "job", "deploy", file, "--admin", closed)
	if r.code != 1 || !strings.Contains(r.stderr, file) || !strings.Contains(r.stderr, "modul") {
		t.Errorf("unknown key: %s", r)
	}

	dir := t.TempDir()
	missing := filepath.Join(dir, "job.yaml")
	os.WriteFile(missing, []byte("name: j\nmodule: op/op.wasm\ninputs: [in]\noutputs: [out]\n"), 0o644)
	r = sluice(t, "", "job", "deploy", missing, "--admin", closed)
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Join(dir, "op/op.wasm")+" does not exist; build it with 'sluice build'") {
		t.Errorf("missing module: %s", r)
	}

	want := "cannot reach the sluice node's admin API at " + closed + ": is `sluice serve` running? (--admin)"
	r = sluice(t, "", "job", "deploy", echoJobFile(t, ""), "--admin", closed)
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("deploy to a closed port: %s", r)
	}
	r = sluiceEnv(t, []string{"SLUICE_ADMIN=" + closed}, "", "job", "list")
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("SLUICE_ADMIN: %s", r)
	}
}

// The status table keeps one line per input, shows restore progress, a
// missing checkpoint as "-" and a multi-line error on one line.
func TestWriteJobStatus(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	var b strings.Builder
	writeJobStatus(&b, host.JobStatus{
		Name: "join", State: host.JobRunning, Runtime: "wazero", ModuleSHA: "ab",
		Inputs: []string{"left", "right"}, Outputs: []string{"out"}, Tables: []string{"profiles"},
		Tasks: []host.TaskStatus{{
			Partition: 0, State: host.TaskRestoring,
			Inputs: []host.InputPosition{
				{Topic: "left", Position: 5, Committed: -1, End: 9, Lag: 9},
				{Topic: "right", Position: 7, Committed: 7, End: 8, Lag: 1},
			},
			RecordsIn: 12, RecordsOut: 3, RecordsPerSec: 2.4, Restarts: 2,
			LastError: "trap\ngoroutine 1", LastErrorAt: at,
			Restore:    &host.RestoreProgress{Store: "counts", Restored: 40, Total: 100},
			StreamTime: 1700000000123,
			Tables:     []host.TablePosition{{Table: "p", Topic: "profiles", Position: 30, End: 120, BootstrapEnd: 100, Applied: 30}},
		}, {
			Partition: 1, State: host.TaskRunning, StreamTime: -1,
			Inputs: []host.InputPosition{{Topic: "left", Position: 0, Committed: -1}, {Topic: "right", Position: 0, Committed: -1}},
			Tables: []host.TablePosition{{Table: "p", Topic: "profiles", Position: 120, End: 120, BootstrapEnd: 100, Applied: 120}},
		}},
	})
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Tasks:\s+1 running of 2; 12 records in, 3 out, 2 records/s, lag 10$`),
		regexp.MustCompile(`(?m)^0\s+restoring\s+left\s+5\s+-\s+9\s+9\s+12\s+3\s+2\s+2\s+counts 40/100\s+03:04:05 trap \| goroutine 1$`),
		regexp.MustCompile(`(?m)^\s+right\s+7\s+7\s+8\s+1\s*$`),
		regexp.MustCompile(`(?m)^Tables:\s+profiles$`),
		regexp.MustCompile(`(?m)^\s+stream time\s+2023-11-14T22:13:20.123Z\s*$`),
		regexp.MustCompile(`(?m)^\s+profiles\s+30\s+-\s+120\s+90\s+table p, bootstrap 30/100\s*$`),
		regexp.MustCompile(`(?m)^\s+profiles\s+120\s+-\s+120\s+0\s+table p, 120 applied\s*$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status lacks %s:\n%s", want, out)
		}
	}
}

// adminFake is a job manager with one job, "wc", at version 3 of a fixed
// history, behind the real admin handler: the commands' requests and
// output, without a node.
type adminFake struct {
	mu       sync.Mutex
	deployBy string
	rollback []string // "version by" per call
	deleted  []string
}

var adminFakeHistory = []host.JobVersion{
	{Version: 1, ModuleSHA: strings.Repeat("a", 64), At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), By: "cli", Result: host.VersionReplaced},
	{Version: 2, ModuleSHA: strings.Repeat("b", 64), At: time.Date(2026, 1, 3, 3, 4, 5, 0, time.UTC), By: "api", Result: host.VersionReplaced,
		Parameters: map[string]any{"min": 2, "lang": "en"}, SwapPause: 1500 * time.Microsecond},
	{Version: 3, ModuleSHA: strings.Repeat("c", 64), At: time.Date(2026, 1, 4, 3, 4, 5, 0, time.UTC), By: "file /etc/sluice/jobs/wc.yaml", Result: host.VersionActive,
		SwapPause: 3 * time.Millisecond},
	{Version: 4, ModuleSHA: strings.Repeat("d", 64), At: time.Date(2026, 1, 5, 3, 4, 5, 0, time.UTC), By: "cli", Result: host.VersionFailed,
		Error: "init: bad parameter\nmin must be > 0"},
}

func (f *adminFake) job(name string) (host.JobStatus, error) {
	if name != "wc" {
		return host.JobStatus{}, fmt.Errorf("%w: %q", host.ErrNoSuchJob, name)
	}
	return host.JobStatus{Name: "wc", State: host.JobRunning, Runtime: "wazero", ModuleSHA: strings.Repeat("c", 64),
		Inputs: []string{"lines"}, Outputs: []string{"counts", "words"}, Version: 3}, nil
}

func (f *adminFake) DeployBy(_ context.Context, spec host.JobSpec, _ []byte, by string) (host.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployBy = by
	return host.JobStatus{Name: spec.Name, State: host.JobRunning, Inputs: spec.Inputs, Outputs: []string{"out"}, ModuleSHA: "ef", Version: 1}, nil
}
func (f *adminFake) Stop(_ context.Context, name string) error  { _, err := f.job(name); return err }
func (f *adminFake) Start(_ context.Context, name string) error { _, err := f.job(name); return err }
func (f *adminFake) List() []host.JobStatus                     { st, _ := f.job("wc"); return []host.JobStatus{st} }
func (f *adminFake) Status(name string) (host.JobStatus, error) { return f.job(name) }
func (f *adminFake) History(name string) ([]host.JobVersion, error) {
	if _, err := f.job(name); err != nil {
		return nil, err
	}
	// Newest first, to show that the table does not rely on the order.
	h := slices.Clone(adminFakeHistory)
	slices.Reverse(h)
	return h, nil
}
func (f *adminFake) Rollback(_ context.Context, name string, version int, by string) (host.JobStatus, error) {
	st, err := f.job(name)
	if err != nil {
		return st, err
	}
	if version < 1 || version > len(adminFakeHistory) {
		return st, fmt.Errorf("%w: %s has no version %d", host.ErrNoSuchVersion, name, version)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollback = append(f.rollback, fmt.Sprintf("%d %s", version, by))
	st.Version, st.ModuleSHA = 5, adminFakeHistory[version-1].ModuleSHA
	return st, nil
}

// recorded returns what the fake was sent, under its lock: the handler
// writes from the test server's goroutines, and the CLI subprocess's exit
// is no synchronization the race detector can see.
func (f *adminFake) recorded() (deployBy string, rollback, deleted []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deployBy, slices.Clone(f.rollback), slices.Clone(f.deleted)
}

func (f *adminFake) Delete(_ context.Context, name string) error {
	if _, err := f.job(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, name)
	return nil
}

// The version commands against the admin handler with a fake manager:
// what they send (by "cli", the resolved rollback version, nothing for a
// delete without --yes) and what they print.
func TestJobVersionCommands(t *testing.T) {
	f := &adminFake{}
	srv := httptest.NewServer(admin.NewHandler(f, nil))
	defer srv.Close()
	job := func(args ...string) result {
		return sluice(t, "", append(append([]string{"job"}, args...), "--admin", srv.URL)...)
	}

	r := job("deploy", echoJobFile(t, ""))
	if by, _, _ := f.recorded(); r.code != 0 || by != "cli" {
		t.Errorf("deploy: %s; recorded by %q, want cli", r, by)
	}

	r = job("history", "wc")
	if r.code != 0 {
		t.Fatalf("history: %s", r)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`^VERSION\s+RESULT\s+WHEN\s+BY\s+MODULE\s+PAUSE\s+PARAMETERS\s+ERROR\n1\s`),
		regexp.MustCompile(`(?m)^2\s+replaced\s+2026-01-03T03:04:05Z\s+api\s+bbbbbbbbbbbb\s+1.5ms\s+\{"lang":"en","min":2\}\s+-$`),
		regexp.MustCompile(`(?m)^3\s+active\s+2026-01-04T03:04:05Z\s+file /etc/sluice/jobs/wc.yaml\s+cccccccccccc\s+3ms\s+-\s+-$`),
		regexp.MustCompile(`(?m)^4\s+failed\s+.*\s+init: bad parameter \| min must be > 0\n$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("history lacks %s:\n%s", want, r.stdout)
		}
	}
	r = job("history", "wc", "--json")
	var versions []host.JobVersion
	if err := json.Unmarshal([]byte(r.stdout), &versions); err != nil || len(versions) != 4 {
		t.Errorf("history --json: %v\n%s", err, r)
	}

	// Without --to: version 2, the newest before the active 3 that did
	// not fail, named in the message.
	r = job("rollback", "wc")
	if r.code != 0 || r.stdout != "rolled back wc to version 2: now version 5, module sha256:"+strings.Repeat("b", 64)+"\n" {
		t.Errorf("rollback: %s", r)
	}
	r = job("rollback", "wc", "--to", "1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "rolled back wc to version 1: now version 5, module sha256:aaaa") {
		t.Errorf("rollback --to 1: %s", r)
	}
	if _, rollback, _ := f.recorded(); !slices.Equal(rollback, []string{"2 cli", "1 cli"}) {
		t.Errorf("rollbacks sent %q, want [2 cli 1 cli]", rollback)
	}
	if r = job("rollback", "wc", "--to", "9"); r.code != 1 || !strings.Contains(r.stderr, "wc has no version 9") {
		t.Errorf("rollback to a missing version: %s", r)
	}
	if r = job("rollback", "wc", "--to", "-1"); r.code != 2 || !strings.Contains(r.stderr, "sluice job history wc") {
		t.Errorf("rollback --to -1: %s", r)
	}

	r = job("delete", "wc")
	if _, _, deleted := f.recorded(); r.code != 2 || len(deleted) != 0 {
		t.Errorf("delete without --yes: %s; deleted %q", r, deleted)
	}
	for _, want := range []string{"without --yes", "local state", "changelog topics", "output topics stay", "sluice job delete wc --yes", "sluice job stop wc"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("delete refusal lacks %q:\n%s", want, r.stderr)
		}
	}
	r = job("delete", "wc", "--yes")
	if _, _, deleted := f.recorded(); r.code != 0 || r.stdout != "deleted wc; its output topics stay: counts, words\n" || !slices.Equal(deleted, []string{"wc"}) {
		t.Errorf("delete --yes: %s; deleted %q", r, deleted)
	}

	if r = job("status", "wc"); !regexp.MustCompile(`(?m)^Version:\s+3$`).MatchString(r.stdout) {
		t.Errorf("status does not show the version: %s", r)
	}
	for _, args := range [][]string{{"history", "nope"}, {"rollback", "nope"}, {"rollback", "nope", "--to", "1"}, {"delete", "nope", "--yes"}} {
		if r = job(args...); r.code != 1 || !strings.Contains(r.stderr, `no such job: "nope"`) {
			t.Errorf("job %s: %s", strings.Join(args, " "), r)
		}
	}
}

// The history table: newest last whatever the order given, empty cells as
// "-", long parameters cut short.
func TestWriteJobHistory(t *testing.T) {
	long := map[string]any{"words": strings.Repeat("x", 100)}
	var b strings.Builder
	writeJobHistory(&b, []host.JobVersion{
		{Version: 2, Result: host.VersionFailed, By: "api", Error: "module does not compile"},
		{Version: 1, Result: host.VersionActive, ModuleSHA: "0123456789abcdef", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)), By: "cli", Parameters: long},
	})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("history table:\n%s", b.String())
	}
	if !regexp.MustCompile(`^1\s+active\s+2026-01-02T02:04:05Z\s+cli\s+0123456789ab\s+-\s+\{"words":"x+\.\.\.\s+-$`).MatchString(lines[1]) {
		t.Errorf("version 1 row: %q", lines[1])
	}
	if !regexp.MustCompile(`^2\s+failed\s+-\s+api\s+-\s+-\s+-\s+module does not compile$`).MatchString(lines[2]) {
		t.Errorf("version 2 row: %q", lines[2])
	}
	if got := compactParams(long); len(got) != maxParamsWidth {
		t.Errorf("parameters cut to %d characters, want %d", len(got), maxParamsWidth)
	}
}

func TestPreviousGoodVersion(t *testing.T) {
	v := func(n int, result string) host.JobVersion { return host.JobVersion{Version: n, Result: result} }
	for _, tc := range []struct {
		versions []host.JobVersion
		want     int
	}{
		{nil, 0},
		{[]host.JobVersion{v(1, host.VersionActive)}, 0},
		{[]host.JobVersion{v(1, host.VersionReplaced), v(2, host.VersionActive)}, 1},
		// A failed deploy after the active version is not "previous";
		// failed ones before it are skipped.
		{[]host.JobVersion{v(1, host.VersionReplaced), v(2, host.VersionFailed), v(3, host.VersionActive), v(4, host.VersionFailed)}, 1},
		{[]host.JobVersion{v(3, host.VersionActive), v(2, host.VersionReplaced), v(1, host.VersionReplaced)}, 2},
		{[]host.JobVersion{v(1, host.VersionReplaced), v(2, host.VersionFailed)}, 0}, // nothing active
	} {
		if got := previousGoodVersion(tc.versions); got != tc.want {
			t.Errorf("previousGoodVersion(%+v) = %d, want %d", tc.versions, got, tc.want)
		}
	}
}

// The version commands against a running node: two deploys, the history
// they make, a rollback to the first, and delete, which leaves the output
// topic.
func TestJobVersionsOnNode(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "in", "--partitions", "2")
	file := echoJobFile(t, "")
	dir := filepath.Dir(file)
	if err := os.WriteFile(filepath.Join(dir, "params.wasm"), testguests.Build("params"), 0o644); err != nil {
		t.Fatal(err)
	}
	params := filepath.Join(dir, "params.yaml")
	os.WriteFile(params, []byte("name: echo\nmodule: params.wasm\ninputs: [in]\noutputs: [out]\nparameters: {greeting: hi}\n"), 0o644)

	for _, f := range []string{file, params} {
		if r := n.job("deploy", f); r.code != 0 {
			t.Fatalf("deploy %s: %s", f, r)
		}
	}
	r := n.job("history", "echo")
	if r.code != 0 ||
		!regexp.MustCompile(`(?m)^1\s+replaced\s+\S+Z\s+cli\s+[0-9a-f]{12}\s+-\s+-\s+-$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^2\s+active\s+\S+Z\s+cli\s+[0-9a-f]{12}\s+\S+\s+\{"greeting":"hi"\}\s+-$`).MatchString(r.stdout) {
		t.Errorf("history after two deploys: %s", r)
	}
	var versions []host.JobVersion
	json.Unmarshal([]byte(n.job("history", "echo", "--json").stdout), &versions)
	if len(versions) != 2 {
		t.Fatalf("history --json: %+v", versions)
	}

	r = n.job("rollback", "echo")
	if want := "rolled back echo to version 1: now version 3, module sha256:" + versions[0].ModuleSHA + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("rollback: %s\nwant stdout %q", r, want)
	}
	if st := n.jobStatus("echo"); st.Version != 3 || st.ModuleSHA != versions[0].ModuleSHA {
		t.Errorf("after rollback: version %d, sha %s", st.Version, st.ModuleSHA)
	}
	if r = n.job("status", "echo"); !regexp.MustCompile(`(?m)^Version:\s+3$`).MatchString(r.stdout) {
		t.Errorf("status: %s", r)
	}

	if r = n.job("delete", "echo"); r.code != 2 {
		t.Errorf("delete without --yes: %s", r)
	}
	if st := n.jobStatus("echo"); st.State != host.JobRunning {
		t.Errorf("delete without --yes changed the job: %+v", st)
	}
	if r = n.job("delete", "echo", "--yes"); r.code != 0 || r.stdout != "deleted echo; its output topics stay: out\n" {
		t.Errorf("delete --yes: %s", r)
	}
	if r = n.job("status", "echo"); r.code != 1 || !strings.Contains(r.stderr, `no such job: "echo"`) {
		t.Errorf("status after delete: %s", r)
	}
	if out := n.ok("", "topic", "list"); !regexp.MustCompile(`(?m)^out\s`).MatchString(out) {
		t.Errorf("delete removed the output topic:\n%s", out)
	}
}
