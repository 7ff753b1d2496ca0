package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/testguests"
)

// newNode runs a real broker, offset store and job manager in a temporary
// directory and serves the admin API for them over HTTP.
func newNode(t *testing.T) (*broker.Broker, *host.Manager, *admin.Client) {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	b, err := broker.Open(broker.Config{DataDir: dir, NodeID: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	coord, err := group.New(b, group.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coord.Close() })
	m, err := host.NewManager(context.Background(), host.Config{DataDir: dir, Broker: b, Offsets: coord.Offsets(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(admin.NewHandler(m, log))
	t.Cleanup(srv.Close)
	return b, m, admin.NewClient(srv.URL, srv.Client())
}

func echoSpec(name string) host.JobSpec {
	return host.JobSpec{Name: name, Inputs: []string{"in"}, Outputs: []host.OutputSpec{{Topic: "out"}}}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// The whole lifecycle through HTTP: deploy, list, status, stop, start,
// against a real manager running a real module.
func TestDeployListStatusStopStart(t *testing.T) {
	b, _, c := newNode(t)
	if _, err := b.CreateTopic("in", 3, nil); err != nil {
		t.Fatal(err)
	}
	module := testguests.Build("echo")
	st, err := c.Deploy(ctx(t), echoSpec("echo"), module)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if st.Name != "echo" || st.State != host.JobRunning || len(st.Tasks) != 3 {
		t.Fatalf("deploy answered %+v, want echo running with 3 tasks", st)
	}
	if len(st.ModuleSHA) != 64 {
		t.Errorf("module sha256 %q", st.ModuleSHA)
	}
	if _, ok := b.Topic("out"); !ok {
		t.Error("deploy did not create the output topic")
	}

	list, err := c.List(ctx(t))
	if err != nil || len(list) != 1 || list[0].Name != "echo" {
		t.Fatalf("list: %v %+v", err, list)
	}
	got, err := c.Status(ctx(t), "echo")
	if err != nil || got.Name != "echo" || len(got.Tasks) != 3 || len(got.Tasks[0].Inputs) != 1 || got.Tasks[0].Inputs[0].Topic != "in" {
		t.Fatalf("status: %v %+v", err, got)
	}

	stopped, err := c.Stop(ctx(t), "echo")
	if err != nil || stopped.State != host.JobStopped {
		t.Fatalf("stop: %v %+v", err, stopped)
	}
	started, err := c.Start(ctx(t), "echo")
	if err != nil || started.State != host.JobRunning || len(started.Tasks) != 3 {
		t.Fatalf("start: %v %+v", err, started)
	}
}

// Versions through HTTP: two deploys make a history, a rollback to 1 and a
// default rollback (no body: the previous good version) each add a version
// with the old module, and delete removes the job but not its output topic.
func TestHistoryRollbackDelete(t *testing.T) {
	b, m, c := newNode(t)
	if _, err := b.CreateTopic("in", 2, nil); err != nil {
		t.Fatal(err)
	}
	v1, err := c.Deploy(ctx(t), echoSpec("job"), testguests.Build("echo"))
	if err != nil {
		t.Fatalf("deploy 1: %v", err)
	}
	spec2 := echoSpec("job")
	spec2.Parameters = map[string]any{"greeting": "hi"}
	v2, err := c.DeployBy(ctx(t), spec2, testguests.Build("params"), "cli")
	if err != nil {
		t.Fatalf("deploy 2: %v", err)
	}
	if v1.Version != 1 || v2.Version != 2 || v1.ModuleSHA == v2.ModuleSHA {
		t.Fatalf("deploys answered versions %d (sha %s) and %d (sha %s), want 1 and 2 with different modules",
			v1.Version, v1.ModuleSHA, v2.Version, v2.ModuleSHA)
	}

	h, err := c.History(ctx(t), "job")
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	want := []host.JobVersion{
		{Version: 1, ModuleSHA: v1.ModuleSHA, By: "api", Result: host.VersionReplaced},
		{Version: 2, ModuleSHA: v2.ModuleSHA, By: "cli", Result: host.VersionActive},
	}
	checkHistory(t, h, want)
	if len(h) == 2 && h[1].Parameters["greeting"] != "hi" {
		t.Errorf("version 2 parameters %v, want greeting: hi", h[1].Parameters)
	}

	v3, err := c.Rollback(ctx(t), "job", 1, "cli")
	if err != nil {
		t.Fatalf("rollback to 1: %v", err)
	}
	if v3.Version != 3 || v3.ModuleSHA != v1.ModuleSHA || v3.State != host.JobRunning {
		t.Errorf("rollback to 1 answered version %d, sha %s, %s; want version 3 running version 1's module %s",
			v3.Version, v3.ModuleSHA, v3.State, v1.ModuleSHA)
	}

	// No body at all: the previous good version, 2, by "api".
	resp, err := http.Post(c.Addr()+"/v1/jobs/job/rollback", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var v4 host.JobStatus
	json.NewDecoder(resp.Body).Decode(&v4)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || v4.Version != 4 || v4.ModuleSHA != v2.ModuleSHA {
		t.Errorf("rollback without a body: %d, version %d, sha %s; want 200, version 4 with version 2's module %s",
			resp.StatusCode, v4.Version, v4.ModuleSHA, v2.ModuleSHA)
	}
	h, err = c.History(ctx(t), "job")
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	checkHistory(t, h, append(want[:1:1],
		host.JobVersion{Version: 2, ModuleSHA: v2.ModuleSHA, By: "cli", Result: host.VersionReplaced},
		host.JobVersion{Version: 3, ModuleSHA: v1.ModuleSHA, Result: host.VersionReplaced},
		host.JobVersion{Version: 4, ModuleSHA: v2.ModuleSHA, Result: host.VersionActive},
	))
	if len(h) == 4 && h[3].Parameters["greeting"] != "hi" {
		t.Errorf("rolling back to version 2 did not bring its parameters back: %v", h[3].Parameters)
	}

	_, err = c.Rollback(ctx(t), "job", 99, "cli")
	if !admin.IsNotFound(err) || !strings.Contains(err.Error(), "99") {
		t.Errorf("rollback to a version that never was: %v, want a 404 naming it", err)
	}

	if err := c.Delete(ctx(t), "job"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Status(ctx(t), "job"); !admin.IsNotFound(err) {
		t.Errorf("status after delete: %v, want 404", err)
	}
	if _, err := c.History(ctx(t), "job"); !admin.IsNotFound(err) {
		t.Errorf("history after delete: %v, want 404", err)
	}
	if err := c.Delete(ctx(t), "job"); !admin.IsNotFound(err) {
		t.Errorf("deleting twice: %v, want 404", err)
	}
	if list := m.List(); len(list) != 0 {
		t.Errorf("jobs after delete: %+v", list)
	}
	if _, ok := b.Topic("out"); !ok {
		t.Error("delete removed the output topic")
	}
}

// checkHistory compares the fields of h that a test can know in advance;
// By is checked only where want has one, since a rollback's origin is
// worded by the manager.
func checkHistory(t *testing.T, h, want []host.JobVersion) {
	t.Helper()
	if len(h) != len(want) {
		t.Fatalf("history has %d versions, want %d: %+v", len(h), len(want), h)
	}
	for i, w := range want {
		g := h[i]
		if g.Version != w.Version || g.ModuleSHA != w.ModuleSHA || g.Result != w.Result || (w.By != "" && g.By != w.By) || g.At.IsZero() {
			t.Errorf("history[%d] = %+v, want version %d, %s, sha %s, by %q, with a time", i, g, w.Version, w.Result, w.ModuleSHA, w.By)
		}
	}
}

// An empty node lists [] (not null), and unknown jobs are 404 with the
// manager's message for every per-job route.
func TestNotFound(t *testing.T) {
	_, _, c := newNode(t)
	list, err := c.List(ctx(t))
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("list on an empty node: %v %#v", err, list)
	}
	for name, call := range map[string]func() error{
		"status":   func() error { _, err := c.Status(ctx(t), "nope"); return err },
		"stop":     func() error { _, err := c.Stop(ctx(t), "nope"); return err },
		"start":    func() error { _, err := c.Start(ctx(t), "nope"); return err },
		"history":  func() error { _, err := c.History(ctx(t), "nope"); return err },
		"rollback": func() error { _, err := c.Rollback(ctx(t), "nope", 0, "cli"); return err },
		"delete":   func() error { return c.Delete(ctx(t), "nope") },
	} {
		err := call()
		if !admin.IsNotFound(err) {
			t.Errorf("%s of a missing job: %v, want 404", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s: message %q does not name the job", name, err)
		}
	}
}

// Deploy refusals are 400 with the manager's own message, and change
// nothing.
func TestDeployBadRequest(t *testing.T) {
	b, _, c := newNode(t)
	module := testguests.Build("echo")
	cases := []struct {
		name   string
		spec   host.JobSpec
		module []byte
		want   string
	}{
		{"missing input topic", echoSpec("echo"), module, `input topic "in" does not exist`},
		{"not wasm", echoSpec("echo"), []byte("not a wasm module"), ""},
		{"no module", echoSpec("echo"), nil, "no module bytes"},
		{"bad name", host.JobSpec{Name: "", Inputs: []string{"in"}, Outputs: []host.OutputSpec{{Topic: "out"}}}, module, "name"},
		{"missing export", echoSpec("echo"), testguests.Build("noexport"), "sluice_process"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Deploy(ctx(t), tc.spec, tc.module)
			var ae *admin.APIError
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
				t.Fatalf("deploy: %v, want a 400", err)
			}
			if !strings.Contains(ae.Message, tc.want) {
				t.Errorf("message %q lacks %q", ae.Message, tc.want)
			}
		})
	}
	if list, _ := c.List(ctx(t)); len(list) != 0 {
		t.Errorf("refused deploys left jobs: %+v", list)
	}
	if _, ok := b.Topic("out"); ok {
		t.Error("a refused deploy created the output topic")
	}
}

// Bodies that are not a deploy request are refused before reaching the
// manager.
func TestMalformedBody(t *testing.T) {
	_, m, _ := newNode(t)
	srv := httptest.NewServer(admin.NewHandler(m, nil))
	defer srv.Close()
	for _, body := range []string{`{`, `{"spec": {"name": "x"}, "module": "AA==", "extra": 1}`, `{"spec": 3}`} {
		resp, err := http.Post(srv.URL+"/v1/jobs", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		var eb struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(eb.Error, "request body") {
			t.Errorf("body %s: %d %q, want 400 naming the request body", body, resp.StatusCode, eb.Error)
		}
	}
	// Rollback bodies are checked before the manager is asked, so a job
	// need not exist.
	for _, body := range []string{`{`, `{"version": "x"}`, `{"version": -1}`, `{"version": 1, "extra": 1}`, `{"by": "a\nb"}`, `[1]`} {
		resp, err := http.Post(srv.URL+"/v1/jobs/x/rollback", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		var eb struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(eb.Error, "request body") {
			t.Errorf("rollback body %s: %d %q, want 400 naming the request body", body, resp.StatusCode, eb.Error)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
}

// A client pointed at a port nothing listens on says it cannot reach the
// node, and that the connection was refused.
func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = admin.NewClient(addr, nil).List(ctx(t))
	var ue *admin.UnreachableError
	if !errors.As(err, &ue) || ue.Addr != addr {
		t.Fatalf("list against a closed port: %v, want an UnreachableError for %s", err, addr)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q does not say the connection was refused", err)
	}
}
