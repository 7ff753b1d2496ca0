package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The demo, run from the repository root as the README says, builds the
// example operators, counts its text and finds every count equal to the
// one computed directly; its temporary directory is gone afterwards.
func TestDemo(t *testing.T) {
	parent := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin, "demo", "--sentences", "1000", "--repeat", "2", "--data-dir", parent)
	cmd.Dir = "../.."
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Kafka listener: 127\.0\.0\.1:\d+ `),
		regexp.MustCompile(`(?m)^deployed split: sentences -> words, 4 tasks$`),
		regexp.MustCompile(`(?m)^deployed count: words -> word-counts, 4 tasks$`),
		regexp.MustCompile(`(?m)^\s+\d+s  sentences \d+/2000  split \d+ in, \d+ out  count \d+ in, \d+ out  top: `),
		regexp.MustCompile(`(?m)^\s+rank\s+word\s+count\s+expected$`),
		regexp.MustCompile(`(?m)^\s+1\s+the\s+(\d+)\s+(\d+)$`),
		regexp.MustCompile(`(?m)^all \d+ counts equal those computed directly from the text$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("demo output lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n") < 20 {
		t.Errorf("demo printed too little:\n%s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(parent, "*")); len(left) != 0 {
		t.Errorf("demo left %v behind", left)
	}
}

// Outside the repository the demo cannot find its operators and says
// where to run it.
func TestDemoOutsideRepository(t *testing.T) {
	cmd := exec.Command(sluiceBin, "demo")
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run this from the sluice repository root") {
		t.Fatalf("demo outside the repository: %v\n%s", err, out)
	}
}
