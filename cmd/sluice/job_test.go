package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/host"
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
		Inputs: []string{"left", "right"}, Outputs: []string{"out"},
		Tasks: []host.TaskStatus{{
			Partition: 0, State: host.TaskRestoring,
			Inputs: []host.InputPosition{
				{Topic: "left", Position: 5, Committed: -1, End: 9, Lag: 9},
				{Topic: "right", Position: 7, Committed: 7, End: 8, Lag: 1},
			},
			RecordsIn: 12, RecordsOut: 3, RecordsPerSec: 2.4, Restarts: 2,
			LastError: "trap\ngoroutine 1", LastErrorAt: at,
			Restore: &host.RestoreProgress{Store: "counts", Restored: 40, Total: 100},
		}},
	})
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Tasks:\s+0 running of 1; 12 records in, 3 out, 2 records/s, lag 10$`),
		regexp.MustCompile(`(?m)^0\s+restoring\s+left\s+5\s+-\s+9\s+9\s+12\s+3\s+2\s+2\s+counts 40/100\s+03:04:05 trap \| goroutine 1$`),
		regexp.MustCompile(`(?m)^\s+right\s+7\s+7\s+8\s+1\s*$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status lacks %s:\n%s", want, out)
		}
	}
}
