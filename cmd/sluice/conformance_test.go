package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/gowasm"
)

// writeModule builds the Go operator in dir and writes it as name in a
// temporary directory, whose path it returns.
func writeModule(t *testing.T, dir, name string) string {
	t.Helper()
	wasm, err := gowasm.BuildBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantRun fails t unless r exited with code and its stdout holds every
// one of wants.
func wantRun(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d: %s", r.code, code, r)
	}
	for _, want := range wants {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// The example split passes every suite; the contract is inferred from the
// file name, and every case prints a PASS line.
func TestConformanceRunPassesExampleSplit(t *testing.T) {
	mod := writeModule(t, "../../examples/wordcount/go/split", "split.wasm")
	r := sluice(t, "", "conformance", "run", mod)
	wantRun(t, r, 0,
		"operator contract: split (from the file name",
		"PASS  abi/validate",
		"PASS  operator/split/case-and-punctuation",
		"PASS  runtime/bounds/state_get-key",
		"\nok: ",
	)
	if strings.Contains(r.stdout, "FAIL") {
		t.Errorf("a case failed:\n%s", r.stdout)
	}
}

// A split that lowercases fails with exit status 1, a FAIL line and a
// message that names the case and shows the first differing output.
func TestConformanceRunFailsLowercaseSplit(t *testing.T) {
	mod := writeModule(t, "../../conformance/suites/testdata/lowercase-split", "lowercase-split.wasm")
	r := sluice(t, "", "conformance", "run", mod, "--runtime", "wazero", "--run", "^operator/")
	wantRun(t, r, 1,
		"FAIL  operator/split/case-and-punctuation",
		"operator/split/case-and-punctuation [wazero]: batch 0 (3 records): output 0 differs",
		`got:  output=0 partition=-1 timestamp=1000 key="fox,"`,
		`want: output=0 partition=-1 timestamp=1000 key="Fox,"`,
		"PASS  operator/split/ascii-whitespace",
		"\nFAIL: ",
	)
	if !strings.Contains(r.stderr, "conformance cases failed: ") || !strings.Contains(r.stderr, "operator/split/case-and-punctuation [wazero]") {
		t.Errorf("stderr does not name the failed case: %q", r.stderr)
	}
}

// A module built for another ABI version fails abi/validate with the
// validation problem.
func TestConformanceRunFailsOtherABIVersion(t *testing.T) {
	mod := writeModule(t, "../../conformance/suites/testdata/abi-v2", "op.wasm")
	r := sluice(t, "", "conformance", "run", mod, "--runtime", "wazero", "--run", "^abi/")
	wantRun(t, r, 1,
		"operator contract: none",
		"FAIL  abi/validate",
		"abi/validate [wazero]: the runtime refuses the module",
		"imports sluice_v1.check_abi_version_2",
		"SKIP  abi/golden-input",
	)
}

// Without a module, the runtime suite runs; --run selects cases.
func TestConformanceRunWithoutModule(t *testing.T) {
	r := sluice(t, "", "conformance", "run", "--runtime", "wazero", "--run", "^runtime/bounds/", "--table")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	passes := regexp.MustCompile(`(?m)^PASS  runtime/bounds/`).FindAllString(r.stdout, -1)
	if len(passes) < 12 || strings.Contains(r.stdout, "runtime/fault/") {
		t.Errorf("%d bounds cases passed (want every host function's), or --run let others through:\n%s", len(passes), r.stdout)
	}
	if !strings.Contains(r.stdout, "| runtime | ") {
		t.Errorf("no table:\n%s", r.stdout)
	}
}

func TestConformanceList(t *testing.T) {
	r := sluice(t, "", "conformance", "list")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	for _, want := range []string{"abi: ", "runtime: ", "operator: ", "equivalence: ",
		"abi/validate", "runtime/bounds/state_scan-result-buffer", "operator/count/corrupt-stored-count", "equivalence/split-vectors"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q", want)
		}
	}
}

func TestConformanceUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"conformance", "run", "--operator", "wordcount", "x.wasm"},
		{"conformance", "run", "--runtime", "v8"},
		{"conformance", "run", "--run", "("},
		{"conformance", "run", "a.wasm", "b.wasm"},
	} {
		if r := sluice(t, "", args...); r.code != 2 {
			t.Errorf("sluice %s: exit status %d, want 2 (usage): %s", strings.Join(args, " "), r.code, r)
		}
	}
}
