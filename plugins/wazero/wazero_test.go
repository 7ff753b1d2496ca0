package wazero

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

func TestEchoRoundTripIsByteExact(t *testing.T) {
	h := newMemHost()
	inst := instantiate(t, "echo", plugins.InstanceConfig{Host: h})
	in := []abi.Record{
		{Offset: 10, Timestamp: 111, Key: nil, Value: []byte("null key")},
		{Offset: 11, Timestamp: 112, Key: []byte{}, Value: []byte("empty key")},
		{Offset: 12, Timestamp: 113, Key: []byte("k"), Value: nil},
		{Offset: 13, Timestamp: 114, Key: []byte("h"), Value: []byte{0, 1, 2, 255},
			Headers: []abi.Header{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("nullv"), Value: nil}, {Key: []byte("e"), Value: []byte{}}}},
	}
	if err := process(context.Background(), inst, in...); err != nil {
		t.Fatal(err)
	}
	// The expected emit batch, encoded by the host's own codec: echo must
	// produce exactly these bytes in one emit call.
	var want []byte
	for i := range in {
		want = abi.AppendOutput(want, &abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit,
			Key: in[i].Key, Value: in[i].Value, Headers: in[i].Headers})
	}
	if len(h.emitted) != 1 {
		t.Fatalf("echo made %d emit calls, want 1", len(h.emitted))
	}
	if !bytes.Equal(h.emitted[0], want) {
		t.Fatalf("emitted batch differs:\n got %x\nwant %x", h.emitted[0], want)
	}
	outs := h.outputs(t)
	if outs[0].Key != nil || outs[1].Key == nil || outs[2].Value != nil || outs[3].Headers[1].Value != nil {
		t.Fatalf("null/empty distinction lost: %+v", outs)
	}

	// A second, larger batch makes the host grow the input region.
	h.reset()
	big := make([]abi.Record, 2000)
	for i := range big {
		big[i] = abi.Record{Offset: int64(i), Key: []byte("key"), Value: bytes.Repeat([]byte{byte(i)}, 100)}
	}
	if err := process(context.Background(), inst, big...); err != nil {
		t.Fatal(err)
	}
	outs = h.outputs(t)
	if len(outs) != len(big) || !bytes.Equal(outs[1999].Value, big[1999].Value) {
		t.Fatalf("got %d outputs after a region grow, want %d", len(outs), len(big))
	}
}

func TestParamsReachInit(t *testing.T) {
	h := newMemHost()
	params := []byte(`{"threshold": 3, "name": "x"}`)
	inst := instantiate(t, "params", plugins.InstanceConfig{Host: h, Params: params})
	if err := process(context.Background(), inst, values("a", "b")...); err != nil {
		t.Fatal(err)
	}
	outs := h.outputs(t)
	if len(outs) != 2 || string(outs[0].Value) != string(params) || string(outs[1].Value) != string(params) {
		t.Fatalf("outputs %+v, want the params %q twice", outs, params)
	}
}

func TestInitFailure(t *testing.T) {
	m := compileGuest(t, "initfail")
	_, err := m.Instantiate(context.Background(), plugins.InstanceConfig{Name: "initfail/0", Host: newMemHost()})
	var ie *plugins.InitError
	if !errors.As(err, &ie) || ie.Message != "bad params" || ie.Status != 1 {
		t.Fatalf("got %v, want an InitError with status 1 and message %q", err, "bad params")
	}
}

func TestRecordFailureKeepsInstanceUsable(t *testing.T) {
	h := newMemHost()
	inst := instantiate(t, "fail-on", plugins.InstanceConfig{Host: h})
	err := process(context.Background(), inst, values("a", "b", "poison", "c")...)
	var re *plugins.RecordError
	if !errors.As(err, &re) || re.Index != 2 || re.Message != "poison record: poison" {
		t.Fatalf("got %v, want RecordError index 2", err)
	}
	if len(h.emitted) != 0 {
		t.Fatalf("failed call emitted %d batches", len(h.emitted))
	}
	if err := process(context.Background(), inst, values("a", "b")...); err != nil {
		t.Fatalf("instance unusable after a record failure: %v", err)
	}
	if got := len(h.outputs(t)); got != 2 {
		t.Fatalf("got %d outputs, want 2", got)
	}
}

func TestOpenFileFails(t *testing.T) {
	h := newMemHost()
	inst := instantiate(t, "openfile", plugins.InstanceConfig{Host: h})
	for _, path := range []string{"", "/etc/hostname", "./go.mod", "../../go.mod"} {
		err := process(context.Background(), inst, abi.Record{Value: []byte(path)})
		var re *plugins.RecordError
		if !errors.As(err, &re) {
			t.Fatalf("reading %q: got %v, want a RecordError (the guest must not open files)", path, err)
		}
		t.Logf("reading %q: %s", path, re.Message)
	}
	if outs := h.outputs(t); len(outs) != 0 {
		t.Fatalf("file contents leaked: %q", outs[0].Value)
	}
}

// syncBuffer is a bytes.Buffer safe for the guest and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStdoutStderrAndLogCaptured(t *testing.T) {
	h := newMemHost()
	var stdout, stderr syncBuffer
	inst := instantiate(t, "printer", plugins.InstanceConfig{Host: h, Stdout: &stdout, Stderr: &stderr})
	if err := process(context.Background(), inst, values("hello", "world")...); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "stdout: hello\nstdout: world\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := stderr.String(), "stderr: hello\nstderr: world\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	if got, want := strings.Join(h.logs, "|"), "log: hello|log: world"; got != want {
		t.Errorf("logs %q, want %q", got, want)
	}
}

func entropy(t *testing.T, seed uint64) []string {
	t.Helper()
	h := newMemHost()
	inst := instantiate(t, "entropy", plugins.InstanceConfig{Host: h, Seed: seed})
	if err := process(context.Background(), inst, values("a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, o := range h.outputs(t) {
		vs = append(vs, string(o.Value))
	}
	return vs
}

func TestDeterministicClockAndRandom(t *testing.T) {
	a1, a2, b := entropy(t, 7), entropy(t, 7), entropy(t, 8)
	t.Logf("seed 7: %q", a1)
	if strings.Join(a1, "\n") != strings.Join(a2, "\n") {
		t.Fatalf("same seed, different values:\n%q\n%q", a1, a2)
	}
	for i := range a1 {
		if randOf(a1[i]) == randOf(b[i]) {
			t.Fatalf("seeds 7 and 8 gave the same random bytes %q", randOf(a1[i]))
		}
	}
	// The wall clock is fake: it starts at 2024-01-01, not now.
	if !strings.HasPrefix(a1[0], "wall=17040672") {
		t.Fatalf("wall clock %q is not the fake epoch 2024-01-01", a1[0])
	}
}

func randOf(s string) string { return s[strings.Index(s, "rand="):] }

func TestStateFunctions(t *testing.T) {
	h := newMemHost("s")
	inst := instantiate(t, "stateall", plugins.InstanceConfig{Host: h})
	cmds := []string{
		"get a 8",        // absent
		"put a 1",        // ok
		"put b 22",       // ok
		"put c 333",      // ok
		"get a 8",        // fits
		"get c 2",        // too small: length returned, nothing copied
		"get c 3",        // exact fit
		"del b",          // ok
		"get b 8",        // gone
		"scan - - 100",   // a=1 c=333
		"scan b - 100",   // c only
		"scan a c 100",   // a only (end exclusive)
		"scan - - 10",    // only a fits (8+1+1=10)
		"scan - - 3",     // too small for a, cap < 4: no size
		"scan c - 5",     // too small: needed 8+1+3=12
		"scanall - - 12", // page by page
		"scanall - - 4",  // too small from the start
		"open s",         // handle 0
		"open nope",      // bad store
		"badstore",       // bad handle
		"put  -",         // empty key, empty value
		"get - 4",        // empty key's value is empty
	}
	want := []string{
		"get a: -1",
		"put a: 0",
		"put b: 0",
		"put c: 0",
		"get a: 1 1",
		"get c: 3",
		"get c: 3 333",
		"del b: 0",
		"get b: -1",
		"scan: 22 a=1 c=333",
		"scan: 12 c=333",
		"scan: 10 a=1",
		"scan: 10 a=1",
		"scan: -5",
		"scan: -5 needed=12",
		"scanall: a=1 | c=333",
		"scanall: code=-5 needed=10",
		"open s: 0",
		"open nope: -3",
		"badstore: -3",
		"put -: 0",
		"get -: 0 ",
	}
	if err := process(context.Background(), inst, values(cmds...)...); err != nil {
		t.Fatal(err)
	}
	outs := h.outputs(t)
	if len(outs) != len(want) {
		t.Fatalf("got %d results, want %d", len(outs), len(want))
	}
	for i := range want {
		if got := string(outs[i].Value); got != want[i] {
			t.Errorf("%q: got %q, want %q", cmds[i], got, want[i])
		}
	}
}

func TestStateCounter(t *testing.T) {
	h := newMemHost("s")
	inst := instantiate(t, "state", plugins.InstanceConfig{Host: h})
	rs := []abi.Record{{Key: []byte("x")}, {Key: []byte("y")}, {Key: []byte("x")}}
	if err := process(context.Background(), inst, rs...); err != nil {
		t.Fatal(err)
	}
	if err := process(context.Background(), inst, rs[0]); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range h.outputs(t) {
		got = append(got, string(o.Key)+"="+string(o.Value))
	}
	if strings.Join(got, " ") != "x=1 y=1 x=2 x=3" {
		t.Fatalf("counts %v", got)
	}
}

func TestInstancesAreIsolated(t *testing.T) {
	// Two instances of one compiled module, each with its own host: the
	// counter state of one never shows in the other, and neither does
	// the memory (the params guest keeps its params in guest memory).
	ha, hb := newMemHost("s"), newMemHost("s")
	a := instantiate(t, "state", plugins.InstanceConfig{Name: "a", Host: ha})
	b := instantiate(t, "state", plugins.InstanceConfig{Name: "b", Host: hb})
	for range 3 {
		if err := process(context.Background(), a, abi.Record{Key: []byte("k")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := process(context.Background(), b, abi.Record{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if got := string(hb.outputs(t)[0].Value); got != "1" {
		t.Fatalf("second instance saw count %s, want 1", got)
	}
	pa := instantiate(t, "params", plugins.InstanceConfig{Name: "pa", Host: ha, Params: []byte("AAAA")})
	pb := instantiate(t, "params", plugins.InstanceConfig{Name: "pb", Host: hb, Params: []byte("BBBB")})
	ha.reset()
	hb.reset()
	if err := process(context.Background(), pa, values("x")...); err != nil {
		t.Fatal(err)
	}
	if err := process(context.Background(), pb, values("x")...); err != nil {
		t.Fatal(err)
	}
	if string(ha.outputs(t)[0].Value) != "AAAA" || string(hb.outputs(t)[0].Value) != "BBBB" {
		t.Fatalf("instances share memory: %q %q", ha.outputs(t)[0].Value, hb.outputs(t)[0].Value)
	}
}

func TestCompileCache(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r, err := New(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	wasm := testguests.Build("echo")
	m1, err := r.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r.Compile(ctx, bytes.Clone(wasm))
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatal("second Compile of the same bytes did not return the cached module")
	}
	if len(m1.SHA256()) != 64 {
		t.Fatalf("SHA256 %q", m1.SHA256())
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatal("the compilation cache directory is empty")
	}

	// A new runtime on the same directory compiles from the disk cache.
	r2, err := New(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	start := time.Now()
	m3, err := r2.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compile from the disk cache took %v", time.Since(start))
	inst, err := m3.Instantiate(ctx, plugins.InstanceConfig{Name: "cached", Host: newMemHost()})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if err := process(ctx, inst, values("a")...); err != nil {
		t.Fatal(err)
	}
}
