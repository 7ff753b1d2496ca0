package host

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/plugins/runtimes"
)

func TestParseJobFull(t *testing.T) {
	src := `
name: count
module: ops/count.wasm
runtime: wazero
inputs: [words]
outputs:
  - word-counts
  - topic: audit
    partitions: 2
    config:
      cleanup.policy: compact
stores:
  - name: counts
  - name: seen
    changelog: seen-log
tables:
  - profiles
  - name: geo
    topic: geo-table
    bootstrap: full
max-input-wait: 2s
parameters:
  minLength: 3
  Nested: {A: 1}
limits:
  memory: 64MiB
  call-timeout: 5s
  max-output-bytes: 1MiB
  max-batch-bytes: 65536
on-error: dead-letter
commit-interval: 250ms
`
	spec, err := ParseJob("/jobs/count.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := JobSpec{
		Name:    "count",
		Module:  "/jobs/ops/count.wasm",
		Runtime: "wazero",
		Inputs:  []string{"words"},
		Outputs: []OutputSpec{
			{Topic: "word-counts"},
			{Topic: "audit", Partitions: 2, Config: map[string]string{"cleanup.policy": "compact"}},
		},
		Stores: []StoreSpec{
			{Name: "counts", Changelog: "count-counts-changelog"},
			{Name: "seen", Changelog: "seen-log"},
		},
		Tables:          []TableSpec{{Name: "profiles", Topic: "profiles", Bootstrap: BootstrapTimestamp}, {Name: "geo", Topic: "geo-table", Bootstrap: BootstrapFull}},
		MaxInputWait:    2 * time.Second,
		Parameters:      map[string]any{"minLength": 3, "Nested": map[string]any{"A": 1}},
		Limits:          LimitsSpec{MemoryBytes: 64 << 20, CallTimeout: 5 * time.Second, MaxOutputBytes: 1 << 20, MaxBatchBytes: 65536},
		OnError:         PolicyDeadLetter,
		DeadLetterTopic: "count-dlq",
		CommitInterval:  250 * time.Millisecond,
	}
	if !reflect.DeepEqual(spec, want) {
		t.Fatalf("got\n%#v\nwant\n%#v", spec, want)
	}
}

func TestParseJobDefaults(t *testing.T) {
	spec, err := ParseJob("split.yaml", []byte("name: split\nsource: go/split\ninputs: [sentences]\noutputs: [words]\n"))
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("go/split")
	if spec.Source != abs || spec.Module != "" {
		t.Errorf("source %q module %q, want source %q", spec.Source, spec.Module, abs)
	}
	if spec.Runtime != "wazero" || spec.OnError != PolicyFail || spec.CommitInterval != time.Second ||
		spec.Limits.MaxBatchBytes != DefaultMaxBatchBytes || spec.DeadLetterTopic != "" || spec.MaxInputWait != DefaultMaxInputWait {
		t.Errorf("defaults not applied: %+v", spec)
	}
}

func TestLoadJobFileResolvesRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.yaml")
	os.WriteFile(path, []byte("name: j\nmodule: op.wasm\ninputs: [a]\noutputs: [b]\n"), 0o644)
	spec, err := LoadJobFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Module != filepath.Join(dir, "op.wasm") {
		t.Errorf("module %q, want it next to the job file", spec.Module)
	}
	if _, err := LoadJobFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestParseJobRejects(t *testing.T) {
	const base = "name: j\nmodule: op.wasm\ninputs: [in]\noutputs: [out]\n"
	for _, c := range []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"bad yaml", "name: [", []string{"x.yaml: not valid YAML"}},
		{"unknown key", base + "colour: blue\n", []string{"x.yaml: colour: unknown key"}},
		{"typo suggestion", base + "limits:\n  memroy: 1MiB\n", []string{"x.yaml: limits.memroy: unknown key (did you mean memory?)"}},
		{"top typo", base + "ouputs: [x]\n", []string{"ouputs: unknown key (did you mean outputs?)"}},
		{"output key typo", "name: j\nmodule: m\ninputs: [in]\noutputs:\n  - topik: x\n", []string{"outputs[0].topik: unknown key (did you mean topic?)", "outputs[0].topic: missing"}},
		{"table key typo", base + "tables:\n  - name: t\n    topik: x\n", []string{"tables[0].topik: unknown key (did you mean topic?)", "tables[0].topic: missing"}},
		{"table is an input", base + "tables: [in]\n", []string{`tables[0].topic: topic "in" is also an input`}},
		{"table is an output", base + "tables: [out]\n", []string{`tables[0].topic: topic "out" is also an output`}},
		{"table named as a store", base + "stores: [s]\ntables:\n  - {name: s, topic: t}\n", []string{`tables[0].name: "s" is already the name of a store or table`}},
		{"table not a map", base + "tables:\n  - [a]\n", []string{"tables[0]: a list is not a table"}},
		{"bad input wait", base + "max-input-wait: soon\n", []string{`max-input-wait: "soon" is not a duration`}},
		{"store key typo", base + "stores:\n  - name: s\n    changlog: c\n", []string{"stores[0].changlog: unknown key (did you mean changelog?)"}},
		{"bad duration", base + "limits:\n  call-timeout: 5 seconds\n", []string{`x.yaml: limits.call-timeout: "5 seconds" is not a duration (use e.g. 5s)`}},
		{"numeric duration", base + "commit-interval: 5\n", []string{"commit-interval: 5 is not a duration (use e.g. 5s)"}},
		{"negative duration", base + "commit-interval: -1s\n", []string{`commit-interval: "-1s" must be positive`}},
		{"bad memory", base + "limits:\n  memory: lots\n", []string{`limits.memory: "lots" is not a size`}},
		{"memory too big", base + "limits:\n  memory: 8GiB\n", []string{"limits.memory: 8589934592 bytes is more than a 32-bit Wasm memory"}},
		{"memory too small", base + "limits:\n  memory: 100\n", []string{"limits.memory: 100 bytes is less than one 64KiB Wasm page"}},
		{"bad max-output", base + "limits:\n  max-output-bytes: -5\n", []string{"limits.max-output-bytes: -5 must be positive"}},
		{"batch too big", base + "limits:\n  max-batch-bytes: 1GiB\n", []string{"limits.max-batch-bytes: 1073741824 is more than 64MiB"}},
		{"limits not a map", base + "limits: 5\n", []string{"limits: must be a map"}},
		{"no name", "module: m\ninputs: [in]\noutputs: [out]\n", []string{"name: missing"}},
		{"bad name", "name: a/b\nmodule: m\ninputs: [in]\noutputs: [out]\n", []string{`name: "a/b" contains '/'`}},
		{"long name", "name: " + strings.Repeat("n", 201) + "\nmodule: m\ninputs: [in]\noutputs: [out]\n", []string{"longer than 200 characters"}},
		{"no module", "name: j\ninputs: [in]\noutputs: [out]\n", []string{"module: missing"}},
		{"module and source", base + "source: src\n", []string{"module: give either module or source, not both"}},
		// wasmtime needs cgo: a build without it refuses the runtime and
		// says why; a build with it lists it among the runtimes.
		{"wasmtime", base + "runtime: " + map[bool]string{false: "wasmtime", true: "Wasmtime"}[runtimes.Check("wasmtime") == nil] + "\n",
			map[bool][]string{
				false: {"runtime: runtime wasmtime is not available in this build"},
				true:  {`runtime: "Wasmtime" is not a runtime (use wasmtime or wazero)`},
			}[runtimes.Check("wasmtime") == nil]},
		{"unknown runtime", base + "runtime: v8\n", []string{`runtime: "v8" is not a runtime`}},
		{"no inputs", "name: j\nmodule: m\noutputs: [out]\n", []string{"inputs: at least one input topic is needed"}},
		{"no outputs", "name: j\nmodule: m\ninputs: [in]\n", []string{"outputs: at least one output topic is needed"}},
		{"input not a name", "name: j\nmodule: m\ninputs: [{a: 1}]\noutputs: [out]\n", []string{"inputs[0]: a map is not a topic name"}},
		{"bad input name", "name: j\nmodule: m\ninputs: ['x y']\noutputs: [out]\n", []string{`inputs[0]: topic "x y" contains ' '`}},
		{"duplicate input", "name: j\nmodule: m\ninputs: [a, a]\noutputs: [out]\n", []string{`inputs[1]: topic "a" is already inputs[0]`}},
		{"output is input", "name: j\nmodule: m\ninputs: [a]\noutputs: [a]\n", []string{`outputs[0].topic: topic "a" is also an input`}},
		{"duplicate output", "name: j\nmodule: m\ninputs: [a]\noutputs: [b, b]\n", []string{`outputs[1].topic: topic "b" is listed twice`}},
		{"bad partitions", "name: j\nmodule: m\ninputs: [a]\noutputs:\n  - topic: b\n    partitions: 0\n", []string{"outputs[0].partitions: 0 is not a partition count"}},
		{"output not a topic", "name: j\nmodule: m\ninputs: [a]\noutputs: [[1]]\n", []string{"outputs[0]: a list is neither a topic name nor a map"}},
		{"duplicate store", base + "stores:\n  - name: s\n  - name: s\n", []string{`stores[1].name: store "s" is defined twice`}},
		{"store without name", base + "stores:\n  - changelog: c\n", []string{"stores[0].name: missing"}},
		{"changelog is output", base + "stores:\n  - name: s\n    changelog: out\n", []string{`stores[0].changelog: topic "out" is also an input or output`}},
		{"bad policy", base + "on-error: retry\n", []string{`on-error: "retry" is not a policy (use fail, skip or dead-letter)`}},
		{"dlq is input", base + "on-error: dead-letter\ndead-letter-topic: in\n", []string{`dead-letter-topic: topic "in" is also an input`}},
		{"parameters not a map", base + "parameters: [1, 2]\n", []string{"parameters: must be a map"}},
		{"several problems", "name: j\nmodule: m\ninputs: [in]\noutputs: [out]\non-error: x\ncommit-interval: y\n",
			[]string{`x.yaml: on-error: "x" is not a policy`, "x.yaml: commit-interval: \"y\" is not a duration", "\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJob("x.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidJob) {
				t.Errorf("error does not wrap ErrInvalidJob: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestNormalizeSpecFromAPI(t *testing.T) {
	spec, err := NormalizeSpec(JobSpec{Name: "n", Inputs: []string{"a"}, Outputs: []OutputSpec{{Topic: "b"}},
		Stores: []StoreSpec{{Name: "s"}}, OnError: PolicyDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Stores[0].Changelog != "n-s-changelog" || spec.DeadLetterTopic != "n-dlq" {
		t.Errorf("defaults: %+v", spec)
	}
	if _, err := NormalizeSpec(JobSpec{Name: "n"}); err == nil || !strings.Contains(err.Error(), "inputs: at least one") {
		t.Errorf("want inputs problem, got %v", err)
	}
}
