package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

var ratioLine = regexp.MustCompile(`(?m)^sluice/jetstream: \d+\.\d\dx records/s$`)

// The self-contained benchmark runs both systems and prints the table and
// the ratio.
func TestBenchEmbeddedCompareJetStream(t *testing.T) {
	for _, sub := range []string{"produce", "consume"} {
		r := sluice(t, "", "bench", sub, "--records", "20000", "--partitions", "2", "--batch-size", "200",
			"--compare-jetstream", "--data-dir", t.TempDir())
		if r.code != 0 {
			t.Fatalf("bench %s: %s", sub, r)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\s+system\s+client\s+records\s+records/s\s+MB/s\s+p50\s+p99\s+latency of$`),
			regexp.MustCompile(`(?m)^\s+sluice\s+raw\s+20000\s+[\d,]+\s+[\d.]+\s+\S+\s+\S+\s+\S+`),
			regexp.MustCompile(`(?m)^\s+jetstream\s+\w+\s+20000\s+[\d,]+\s+[\d.]+\s+\S+\s+\S+\s+\S+`),
			ratioLine,
		} {
			if !want.MatchString(r.stdout) {
				t.Errorf("bench %s output lacks %s:\n%s", sub, want, r.stdout)
			}
		}
	}
}

// Against a running node, the benchmark deletes the topic it created
// unless told to keep it, and leaves an existing topic alone.
func TestBenchAgainstNode(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "bench", "produce", "--records", "5000", "--topic", "gone", "--client", "kgo")
	if list := n.ok("", "topic", "list"); strings.Contains(list, "gone") {
		t.Errorf("benchmark topic not deleted:\n%s", list)
	}
	n.ok("", "bench", "consume", "--records", "5000", "--topic", "kept", "--keep", "--partitions", "2")
	desc := n.ok("", "topic", "describe", "kept")
	if !regexp.MustCompile(`(?m)^Partitions:\s+2$`).MatchString(desc) {
		t.Errorf("kept topic:\n%s", desc)
	}
	r := n.fails("", "bench", "produce", "--records", "10", "--topic", "kept", "--partitions", "3")
	if !strings.Contains(r.stderr, "exists with 2 partitions") {
		t.Errorf("benchmark on an existing topic with other partitions: %s", r)
	}
}

// --with-group-consumer prints the run alone, with a reader and with a
// committing group member, and leaves no group behind.
func TestBenchProduceWithGroupConsumer(t *testing.T) {
	n := startNode(t, t.TempDir())
	out := n.ok("", "bench", "produce", "--records", "20000", "--partitions", "2", "--batch-size", "200", "--with-group-consumer")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s+sluice\s+raw\s+20000\s+[\d,]+\s`),
		regexp.MustCompile(`(?m)^\s+sluice\s+raw\+reader\s+20000\s+[\d,]+\s`),
		regexp.MustCompile(`(?m)^\s+sluice\s+raw\+group\s+20000\s+[\d,]+\s`),
		regexp.MustCompile(`(?m)^reader \(no group\): consumed 20000 records$`),
		regexp.MustCompile(`(?m)^group member \(sluice-bench-\d+\): consumed 20000 records with [1-9]\d* offset commits$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("bench produce --with-group-consumer output lacks %s:\n%s", want, out)
		}
	}
	if list := n.ok("", "group", "list"); strings.Contains(list, "sluice-bench") {
		t.Errorf("benchmark group left behind:\n%s", list)
	}
}

// `bench pipeline --lang all --runtime all` runs the pass-through job
// with the operator of every language, and the word count pair in C (the
// quickest to build), on every runtime of this binary; verifies each row
// (pass-through outputs counted and sampled against the input, word counts
// against the input) and prints one row per case, language and runtime.
// A smoke test: the figures are not asserted. (Every language's word
// count on every runtime takes minutes to build and compile; the
// operators' equivalence is examples/*/languages_test.go's.)
func TestBenchPipelineLanguagesAndRuntimes(t *testing.T) {
	cwasm.RequireToolchain(t)
	rustwasm.RequireToolchain(t)
	aswasm.RequireToolchain(t)
	header := regexp.MustCompile(`(?m)^\s+case\s+lang\s+runtime\s+input\s+seconds\s+per second\s+input MB/s\s+verified\s*$`)
	for _, run := range []struct {
		args  []string
		langs []string
		rows  func(lang, rt string) []string
	}{
		{[]string{"--case", "passthrough", "--lang", "all"}, []string{"go", "c", "rust", "as"}, func(lang, rt string) []string {
			return []string{
				// Every output is counted; 100 records are compared at
				// each of 3 places of each of 2 partitions.
				`passthrough\s+` + lang + `\s+` + rt + `\s+3,000 records\s+[\d.]+\s+[1-9][\d,]* records/s\s+[\d.]+\s+ok: 3,000 out, 600 sampled equal`,
				`passthrough\s+` + lang + `\s+` + rt + `\s+passthrough\s+3,000\s+3,000\s+[\d.]+s\s+[1-9][\d,]*\s+0`,
			}
		}},
		{[]string{"--case", "wordcount", "--lang", "c"}, []string{"c"}, func(lang, rt string) []string {
			return []string{
				`wordcount\s+` + lang + `\s+` + rt + `\s+3,\d{3} words\s+[\d.]+\s+[1-9][\d,]* words/s\s+[\d.]+\s+ok: [1-9][\d,]* words' counts`,
				`wordcount\s+` + lang + `\s+` + rt + `\s+count\s+3,\d{3}\s+[1-9][\d,]*\s+[\d.]+s\s+[1-9][\d,]*\s+0`,
			}
		}},
	} {
		args := append([]string{"bench", "pipeline", "--runtime", "all", "--records", "3000", "--partitions", "2", "--data-dir", t.TempDir()}, run.args...)
		r := sluice(t, "", args...)
		if r.code != 0 {
			t.Fatalf("%s: %s", strings.Join(args, " "), r)
		}
		if !header.MatchString(r.stdout) {
			t.Errorf("%s: no table header in:\n%s", strings.Join(args, " "), r.stdout)
		}
		for _, lang := range run.langs {
			for _, rt := range runtimes.Available() {
				for _, want := range run.rows(lang, rt) {
					if !regexp.MustCompile(`(?m)^\s+` + want + `\s*$`).MatchString(r.stdout) {
						t.Errorf("%s: output lacks a row matching %s:\n%s", strings.Join(args, " "), want, r.stdout)
					}
				}
			}
		}
	}
}

// A runtime that is not built into the binary, or not one at all, is
// refused before anything runs, with runtimes.Check's explanation.
func TestBenchPipelineUnavailableRuntime(t *testing.T) {
	names := []string{"nosuchruntime"}
	for _, name := range runtimes.Known {
		if runtimes.Check(name) != nil {
			names = append(names, name)
		}
	}
	for _, name := range names {
		r := sluice(t, "", "bench", "pipeline", "--runtime", name, "--records", "10", "--data-dir", t.TempDir())
		if want := "--runtime: " + runtimes.Check(name).Error(); r.code != 2 || !strings.Contains(r.stderr, want) || strings.Contains(r.stdout, "==") {
			t.Errorf("--runtime %s: %s\nwant exit 2 with %q and nothing run", name, r, want)
		}
	}
}

// Against an in-process three-node cluster the produce benchmark writes an
// RF3 topic with acks=all, with both clients, and compares it with a
// three-server JetStream holding an R3 stream.
func TestBenchProduceClusterCompareJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node sluice cluster and a three-server JetStream")
	}
	for _, client := range []string{"raw", "kgo"} {
		r := sluice(t, "", "bench", "produce", "--cluster", "3", "--compare-jetstream", "--client", client,
			"--records", "20000", "--partitions", "3", "--batch-size", "200", "--data-dir", t.TempDir(), "--timeout", "1m")
		if r.code != 0 {
			t.Fatalf("bench produce --cluster 3 --client %s: %s", client, r)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^bench produce: .*3-node in-process cluster.*replication factor 3, min.insync.replicas 2, acks=all`),
			regexp.MustCompile(`(?m)^\s+sluice-R3\s+` + client + `\s+2\d{4}\s+[1-9][\d,]*\s+[\d.]*[1-9][\d.]*\s+\S+\s+\S+\s+`),
			regexp.MustCompile(`(?m)^\s+jetstream-R3\s+async\s+20000\s+[1-9][\d,]*\s+[\d.]*[1-9][\d.]*\s+\S+\s+\S+\s+`),
			regexp.MustCompile(`(?m)^sluice-R3/jetstream-R3: \d+\.\d\dx records/s$`),
		} {
			if !want.MatchString(r.stdout) {
				t.Errorf("bench produce --cluster 3 --client %s output lacks %s:\n%s", client, want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "sluice-R3/jetstream-R3: 0.00x") {
			t.Errorf("zero ratio:\n%s", r.stdout)
		}
	}
}

// One failover round kills the partition leader, reports the time to the
// first acknowledged produce on the new leader, and brings the node back.
func TestBenchFailoverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node sluice cluster and kills a node")
	}
	checkFailover(t, "--cluster", "3")
}

// The same with 'sluice serve' processes killed with SIGKILL, which also
// covers serve's cluster mode end to end, killing a node about a second
// after the cluster formed. (It was opt-in while such a kill could leave
// the cluster without a controller: the survivors' liveness caches kept
// the dead node's expired lease.)
func TestBenchFailoverClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three 'sluice serve' processes and SIGKILLs one")
	}
	checkFailover(t, "--cluster", "3", "--processes")
}

func checkFailover(t *testing.T, mode ...string) {
	t.Helper()
	args := append([]string{"bench", "failover", "--rounds", "1", "--session-timeout", "1s",
		"--data-dir", t.TempDir(), "--timeout", "90s"}, mode...)
	r := sluice(t, "", args...)
	if r.code != 0 {
		t.Fatalf("%s: %s", strings.Join(args, " "), r)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^round 1: killed node [0-2] \(partition leader[^)]*\): first acks=all produce after \d[\d.]*m?s on node [0-2] \(epoch [1-9]\d*\); back in the ISR`),
		regexp.MustCompile(`(?m)^\s+1\s+[0-2]\s+(yes|no)\s+(yes|no)\s+(yes|no)\s+\d[\d.]*m?s\s+\d[\d.]*m?s\s+[0-2]\s+\S+$`),
		regexp.MustCompile(`(?m)^new leader in the metadata \(1 rounds\): p50 \d[\d.]*m?s, max \d[\d.]*m?s$`),
		regexp.MustCompile(`(?m)^failover time \(1 rounds\): p50 \d[\d.]*m?s, max \d[\d.]*m?s$`),
		regexp.MustCompile(`(?m)^producer: [1-9]\d* records acknowledged, 0 failed$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("%s: output lacks %s:\n%s", strings.Join(args, " "), want, r.stdout)
		}
	}
}

// A cluster node must be dialable by its peers, so a wildcard listen
// address needs --advertised-addr.
func TestServeClusterWildcardNeedsAdvertisedAddr(t *testing.T) {
	r := sluice(t, "", "serve", "--listen", "0.0.0.0:0", "--metrics-listen", "", "--data-dir", t.TempDir(),
		"--cluster-listen", "127.0.0.1:1", "--peers", "127.0.0.1:2,127.0.0.1:3")
	if r.code == 0 || !strings.Contains(r.stderr, "cluster mode needs --advertised-addr when --listen is a wildcard address") {
		t.Errorf("serve --cluster-listen on a wildcard listen address: %s", r)
	}
}
