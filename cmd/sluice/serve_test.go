package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// SIGTERM stops serve with status 0 after flushing, and what was
// acknowledged before is there after a restart.
func TestServeSIGTERMAndRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	n.ok("", "topic", "create", "durable", "--partitions", "3")
	var in strings.Builder
	for i := range 500 {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	n.ok(in.String(), "produce", "durable", "--key-separator", ":")
	before := n.ok("", "consume", "durable", "--from-beginning", "--format", `%p %o %k %v\n`)
	if strings.Count(before, "\n") != 500 {
		t.Fatalf("consumed %d records before restart, want 500", strings.Count(before, "\n"))
	}

	if err := n.terminate(); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want status 0:\n%s", err, n.log())
	}
	if !strings.Contains(n.log(), "broker closed") {
		t.Errorf("serve's log does not show the broker closing:\n%s", n.log())
	}

	n2 := startNode(t, dir)
	after := n2.ok("", "consume", "durable", "--from-beginning", "--format", `%p %o %k %v\n`)
	// Partitions interleave in whatever order fetches return; each line
	// carries its partition and offset, so sorted output must match.
	if b, a := sortedLines(before), sortedLines(after); !slices.Equal(b, a) {
		t.Errorf("records differ after restart: %d lines before, %d after; first difference: %s", len(b), len(a), firstDiff(b, a))
	}
	if list := n2.ok("", "topic", "list"); !strings.Contains(list, "durable") {
		t.Errorf("topic missing after restart: %q", list)
	}
	// The node keeps appending after the last offset it had.
	n2.ok("k0:again\n", "produce", "durable", "--key-separator", ":")
	got := n2.ok("", "consume", "durable", "--partition", fmt.Sprint(kafkaPartition("k0", 3)), "--from-beginning", "--format", `%k %v\n`)
	if !strings.HasSuffix(got, "k0 again\n") {
		t.Errorf("record appended after restart not at the end of its partition:\n%s", got)
	}
}

// Settings come from the config file, then the environment, then flags;
// the ready line reports what was chosen, and /metrics serves the
// registry shared with the Kafka server.
func TestServeConfigLayersAndMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.yaml")
	data := filepath.Join(dir, "from-file")
	writeFile(t, cfg, "data-dir: "+data+"\nnode-id: 7\nflush: interval\nflush-interval: 250ms\n")

	n := startNodeEnv(t, "", []string{"SLUICE_FLUSH=os"}, "--config", cfg)
	if got := n.ready["node_id"]; got != float64(7) {
		t.Errorf("node_id %v, want 7 from the config file", got)
	}
	if got := n.ready["flush"]; got != "os" {
		t.Errorf("flush %v, want os from SLUICE_FLUSH over the file's interval", got)
	}
	if got := n.ready["data_dir"]; got != data {
		t.Errorf("data_dir %v, want %s from the file", got, data)
	}
	n.ok("", "topic", "create", "m")
	n.ok("x\n", "produce", "m")
	if _, err := os.Stat(filepath.Join(data, "m-0")); err != nil {
		t.Errorf("partition directory not under the configured data dir: %v", err)
	}

	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "sluice_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	n.terminate()

	// A flag beats the environment.
	n = startNodeEnv(t, t.TempDir(), []string{"SLUICE_NODE_ID=5"}, "--node-id", "9")
	if got := n.ready["node_id"]; got != float64(9) {
		t.Errorf("node_id %v, want 9 from the flag over SLUICE_NODE_ID=5", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bad configuration and bad command lines fail before doing anything,
// with a message that names the setting and a non-zero status: 1 for a bad
// configuration, 2 for a bad command line.
func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	badFlush := filepath.Join(dir, "bad-flush.yaml")
	writeFile(t, badFlush, "flush: fast\n")
	manyBad := filepath.Join(dir, "many.toml")
	writeFile(t, manyBad, "node-id = \"seven\"\nlisten = \"nowhere\"\nlog-level = \"loud\"\n")
	unknown := filepath.Join(dir, "unknown.json")
	writeFile(t, unknown, `{"flsuh": "sync", "data-dir": "x"}`)
	broken := filepath.Join(dir, "broken.yaml")
	writeFile(t, broken, "flush: [sync\n")

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"unknown flush value in file", nil, []string{"serve", "--config", badFlush}, 1, []string{"flush:", `"fast"`, "sync, interval, os"}},
		{"every problem reported", nil, []string{"serve", "--config", manyBad}, 1, []string{"node-id:", "listen:", "log-level:"}},
		{"unknown key in file", nil, []string{"serve", "--config", unknown}, 1, []string{"unknown key", "flsuh"}},
		{"unparsable file", nil, []string{"serve", "--config", broken}, 1, []string{broken}},
		{"missing file", nil, []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml"}},
		{"bad env value", []string{"SLUICE_FLUSH_INTERVAL=soon"}, []string{"serve"}, 1, []string{"flush-interval:", `"soon"`}},
		{"bad flag value", nil, []string{"serve", "--node-id", "x"}, 2, []string{"--node-id"}},
		{"unknown flag", nil, []string{"serve", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"unknown command", nil, []string{"serv"}, 2, []string{`unknown command "serv"`}},
		{"topic create without name", nil, []string{"topic", "create"}, 2, []string{"missing NAME"}},
		{"bad retention", nil, []string{"topic", "create", "t", "--retention", "7x"}, 2, []string{"--retention", "7x"}},
		{"bad topic config syntax", nil, []string{"topic", "create", "t", "--config", "retention.ms"}, 2, []string{"KEY=VALUE"}},
		{"bad acks", nil, []string{"produce", "t", "--acks", "2"}, 2, []string{"--acks"}},
		{"bad format verb", nil, []string{"consume", "t", "--format", "%q"}, 2, []string{"unknown verb %q"}},
		{"offset and from-beginning", nil, []string{"consume", "t", "--offset", "3", "--from-beginning"}, 2, []string{"--offset", "--from-beginning"}},
		{"extra argument", nil, []string{"produce", "t", "u"}, 2, []string{`unexpected argument "u"`}},
		{"bench bad acks", nil, []string{"bench", "produce", "--acks", "many"}, 2, []string{"--acks"}},
		{"unreachable broker", nil, []string{"topic", "list", "--brokers", "127.0.0.1:1"}, 1, []string{"list topics"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sluiceEnv(t, tc.env, "", tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit status %d, want %d: %s", r.code, tc.code, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r)
				}
			}
		})
	}
}

func sortedLines(s string) []string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(l)
	return l
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%q vs %q", a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}
