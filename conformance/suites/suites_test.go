package suites

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	"github.com/sluice-io/sluice/internal/wasmbuild"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

// The runtimes are shared by every test of the package and never closed:
// they cache compiled modules, and compiling a Go operator takes seconds
// (a minute under the race detector), which the disk cache spares the
// next test process.
var (
	runtimesOnce sync.Once
	testRTs      []plugins.Runtime
	testRTsErr   error
)

func testRuntimes(t testing.TB) []plugins.Runtime {
	t.Helper()
	runtimesOnce.Do(func() {
		testRTs, _, testRTsErr = OpenRuntimes(context.Background(), nil,
			runtimes.Options{CacheDir: filepath.Join(os.TempDir(), "sluice-conformance-test-cache")})
	})
	if testRTsErr != nil {
		t.Fatal(testRTsErr)
	}
	return testRTs
}

// language is an SDK whose examples the suites must pass.
type language struct {
	name    string // and the examples' directory name
	require func(testing.TB)
	check   func(context.Context) error
	build   wasmbuild.BuildFunc
}

var languages = []language{
	{"go", func(testing.TB) {}, func(context.Context) error { return nil }, gowasm.Build},
	{"c", cwasm.RequireToolchain, cwasm.CheckToolchain, cwasm.Build},
	{"rust", rustwasm.RequireToolchain, rustwasm.CheckToolchain, rustwasm.Build},
	{"as", aswasm.RequireToolchain, aswasm.CheckToolchain, aswasm.Build},
}

// exampleBuild is one example's module, built once per test process.
type exampleBuild struct {
	once sync.Once
	wasm []byte
	err  error
}

var (
	exampleBuilds sync.Map // "lang/op" -> *exampleBuild
	prebuildOnce  sync.Once
)

// buildExample builds an example, or waits for the build in progress.
func buildExample(lang language, op string) ([]byte, error) {
	v, _ := exampleBuilds.LoadOrStore(lang.name+"/"+op, &exampleBuild{})
	b := v.(*exampleBuild)
	b.once.Do(func() {
		tmp, err := os.MkdirTemp("", "sluice-conformance-build-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, op+".wasm")
		if b.err = lang.build(context.Background(), exampleDir(lang.name, op), out); b.err == nil {
			b.wasm, b.err = os.ReadFile(out)
		}
	})
	return b.wasm, b.err
}

// prebuildExamples starts building every example whose toolchain is
// present, two at a time: the builds (asc takes seconds per module) are
// most of the package's test time, and they overlap with the runs.
func prebuildExamples() {
	prebuildOnce.Do(func() {
		sem := make(chan struct{}, 2)
		for _, lang := range languages {
			if lang.check(context.Background()) != nil {
				continue
			}
			for _, op := range Operators {
				if _, err := os.Stat(exampleDir(lang.name, op)); err != nil {
					continue
				}
				go func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					_, _ = buildExample(lang, op)
				}()
			}
		}
	})
}

// exampleDir is the source of an example operator in a language.
func exampleDir(lang, op string) string {
	if op == OperatorPassthrough {
		return filepath.Join("..", "..", "examples", "passthrough", lang, "passthrough")
	}
	return filepath.Join("..", "..", "examples", "wordcount", lang, op)
}

// moduleCases selects the cases that check a module: the cases that need
// none (the runtime suite) are the same for every module and run once, in
// TestConformanceRuntimeSuite.
var moduleCases = regexp.MustCompile(`^(abi|operator)/|^equivalence/(abi|split|count|passthrough)-vectors$`)

// exampleReports memoizes the suites' report of each example, shared by
// TestConformanceExamples and TestTable.
var (
	exampleMu      sync.Mutex
	exampleReports = map[string]Report{}
)

// exampleReport builds an example (skipping the test when its language's
// toolchain or the example is missing) and runs every suite on it.
func exampleReport(t *testing.T, lang language, op string) Report {
	t.Helper()
	dir := exampleDir(lang.name, op)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no %s example in %s", op, dir)
	}
	lang.require(t)
	exampleMu.Lock()
	defer exampleMu.Unlock()
	key := lang.name + "/" + op
	if rep, ok := exampleReports[key]; ok {
		return rep
	}
	prebuildExamples()
	wasm, err := buildExample(lang, op)
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(context.Background(), Config{Module: wasm, Runtimes: testRuntimes(t), Operator: op, Filter: moduleCases})
	exampleReports[key] = rep
	return rep
}

// requireAllPass fails the test for every result that is not a pass,
// except equivalence skipped for want of a second runtime.
func requireAllPass(t *testing.T, rep Report) {
	t.Helper()
	if len(rep.Results) == 0 {
		t.Fatal("no case ran")
	}
	for _, r := range rep.Results {
		if r.Status == Pass || r.Status == Skip && r.Suite == SuiteEquivalence && len(testRTs) < 2 {
			continue
		}
		t.Errorf("%v", r)
	}
}

// Every example operator, in every language, passes every suite on every
// runtime.
func TestConformanceExamples(t *testing.T) {
	for _, lang := range languages {
		for _, op := range Operators {
			t.Run(lang.name+"/"+op, func(t *testing.T) {
				rep := exampleReport(t, lang, op)
				requireAllPass(t, rep)
				t.Log(rep.Summary())
			})
		}
	}
}

// The runtime suite needs no module and passes on every runtime.
func TestConformanceRuntimeSuite(t *testing.T) {
	rep := Run(context.Background(), Config{Runtimes: testRuntimes(t)})
	requireAllPass(t, rep)
	if n := len(runtimeVectors()) * len(testRTs); rep.Count(Pass) < n {
		t.Errorf("%d passes, want at least %d (every runtime vector on every runtime)", rep.Count(Pass), n)
	}
}

// buildTestdata builds one of the deliberately broken operators.
func buildTestdata(t *testing.T, name string) []byte {
	t.Helper()
	wasm, err := gowasm.BuildBytes(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// failures returns the failed results by case ID.
func failures(rep Report) map[string]Result {
	out := map[string]Result{}
	for _, r := range rep.Failures() {
		out[r.ID()] = r
	}
	return out
}

// A split that lowercases its words fails exactly the operator cases with
// capitals, with a message naming the case and the first differing output;
// the cases without capitals and the abi suite still pass.
func TestConformanceLowercaseSplitFails(t *testing.T) {
	rep := Run(context.Background(), Config{Module: buildTestdata(t, "lowercase-split"), Runtimes: testRuntimes(t), Operator: OperatorSplit, Filter: moduleCases})
	failed := failures(rep)
	r, ok := failed["operator/split/case-and-punctuation"]
	if !ok {
		t.Fatalf("operator/split/case-and-punctuation did not fail; failures: %v", rep.Failures())
	}
	t.Logf("message: %s", r.Message)
	for _, want := range []string{"operator/split/case-and-punctuation [", "batch 0", "output 0 differs", `key="fox,"`, `key="Fox,"`} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message lacks %q: %s", want, r.Message)
		}
	}
	for _, passing := range []string{"operator/split/ascii-whitespace", "operator/split/null-empty-and-keys", "abi/golden-input", "abi/validate"} {
		if f, ok := failed[passing]; ok {
			t.Errorf("%s should pass (no capitals): %v", passing, f)
		}
	}
}

// A module built for another ABI version fails abi/validate with the
// runtime's validation message, naming the import, on every runtime; the
// cases that need an instance are skipped rather than failed again.
func TestConformanceOtherABIVersionFails(t *testing.T) {
	rts := testRuntimes(t)
	rep := Run(context.Background(), Config{Module: buildTestdata(t, "abi-v2"), Runtimes: rts, Operator: OperatorSplit, Filter: moduleCases})
	var validateFailures int
	for _, r := range rep.Results {
		switch {
		case r.ID() == "abi/validate":
			if r.Status != Fail {
				t.Errorf("abi/validate on %s: %s, want FAIL", r.Runtime, r.Status)
				continue
			}
			validateFailures++
			t.Logf("message: %s", r.Message)
			for _, want := range []string{"abi/validate [" + r.Runtime + "]", "check_abi_version_2", "does not import sluice_v1.check_abi_version_1"} {
				if !strings.Contains(r.Message, want) {
					t.Errorf("message lacks %q: %s", want, r.Message)
				}
			}
		case r.Suite == SuiteABI || r.Suite == SuiteOperator:
			if r.Status != Skip || !strings.Contains(r.Message, "does not compile") {
				t.Errorf("%v: want SKIP because the module does not compile", r)
			}
		}
	}
	if validateFailures != len(rts) {
		t.Errorf("abi/validate failed on %d runtimes, want %d", validateFailures, len(rts))
	}
}

// The golden vectors the suites build with package abi are the bytes of
// conformance/abi/testdata.
func TestGoldenVectorsMatchTestdata(t *testing.T) {
	for file, got := range map[string][]byte{
		"input_batch.hex":  goldenInputBatch(),
		"empty_batch.hex":  goldenEmptyBatch(),
		"output_batch.hex": goldenOutputBatch(),
		"scan_result.hex":  goldenScanResult(),
	} {
		want := readHex(t, filepath.Join("..", "abi", "testdata", file))
		if string(got) != string(want) {
			t.Errorf("%s: the suites use %x, the file holds %x", file, got, want)
		}
	}
}

// TestTable renders the conformance matrix of the README: every example in
// every language on every runtime, suite by suite. Print it with
//
//	go test ./conformance/suites -run TestTable -v
func TestTable(t *testing.T) {
	var rows []TableRow
	for _, lang := range languages {
		for _, op := range Operators {
			t.Run(lang.name+"/"+op, func(t *testing.T) {
				rep := exampleReport(t, lang, op)
				requireAllPass(t, rep)
				rows = append(rows, TableRow{Language: lang.name, Operator: op, Report: rep})
			})
		}
	}
	rtRep := Run(context.Background(), Config{Runtimes: testRuntimes(t)})
	requireAllPass(t, rtRep)
	table := MatrixTable(rows, rtRep)
	if got := strings.Count(table, "\n"); got != len(rows)+3 {
		t.Errorf("the table has %d lines for %d modules:\n%s", got, len(rows), table)
	}
	if strings.Contains(table, "FAIL") {
		t.Errorf("failures in the table:\n%s", table)
	}
	if testing.Verbose() {
		// Unindented, to paste into the README.
		fmt.Printf("\n%s\n", table)
	}
}
