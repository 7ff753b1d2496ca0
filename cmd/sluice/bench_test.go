package main

import (
	"regexp"
	"strings"
	"testing"
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
