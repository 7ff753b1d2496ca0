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

// An empty node lists [] (not null), and unknown jobs are 404 with the
// manager's message for every per-job route.
func TestNotFound(t *testing.T) {
	_, _, c := newNode(t)
	list, err := c.List(ctx(t))
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("list on an empty node: %v %#v", err, list)
	}
	for name, call := range map[string]func() error{
		"status": func() error { _, err := c.Status(ctx(t), "nope"); return err },
		"stop":   func() error { _, err := c.Stop(ctx(t), "nope"); return err },
		"start":  func() error { _, err := c.Start(ctx(t), "nope"); return err },
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
