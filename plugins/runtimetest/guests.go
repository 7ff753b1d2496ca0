package runtimetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// The cases of well-behaved guests: the data path, init, failures the
// guest reports, WASI (files, output, clocks, random), state, isolation.

func (s *suite) echoRoundTripIsByteExact(t *testing.T) {
	h := NewMemHost()
	inst := Instantiate(t, s.rt, "echo", plugins.InstanceConfig{Host: h})
	in := []abi.Record{
		{Offset: 10, Timestamp: 111, Key: nil, Value: []byte("null key")},
		{Offset: 11, Timestamp: 112, Key: []byte{}, Value: []byte("empty key")},
		{Offset: 12, Timestamp: 113, Key: []byte("k"), Value: nil},
		{Offset: 13, Timestamp: 114, Key: []byte("h"), Value: []byte{0, 1, 2, 255},
			Headers: []abi.Header{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("nullv"), Value: nil}, {Key: []byte("e"), Value: []byte{}}}},
	}
	if err := Process(context.Background(), inst, in...); err != nil {
		t.Fatal(err)
	}
	// The expected emit batch, encoded by the host's own codec: echo must
	// produce exactly these bytes in one emit call.
	var want []byte
	for i := range in {
		want = abi.AppendOutput(want, &abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit,
			Key: in[i].Key, Value: in[i].Value, Headers: in[i].Headers})
	}
	emitted := h.Emitted()
	if len(emitted) != 1 {
		t.Fatalf("echo made %d emit calls, want 1", len(emitted))
	}
	if !bytes.Equal(emitted[0], want) {
		t.Fatalf("emitted batch differs:\n got %x\nwant %x", emitted[0], want)
	}
	outs := h.Outputs(t)
	if outs[0].Key != nil || outs[1].Key == nil || outs[2].Value != nil || outs[3].Headers[1].Value != nil {
		t.Fatalf("null/empty distinction lost: %+v", outs)
	}

	// A second, larger batch makes the host grow the input region.
	h.Reset()
	big := make([]abi.Record, 2000)
	for i := range big {
		big[i] = abi.Record{Offset: int64(i), Key: []byte("key"), Value: bytes.Repeat([]byte{byte(i)}, 100)}
	}
	if err := Process(context.Background(), inst, big...); err != nil {
		t.Fatal(err)
	}
	outs = h.Outputs(t)
	if len(outs) != len(big) || !bytes.Equal(outs[1999].Value, big[1999].Value) {
		t.Fatalf("got %d outputs after a region grow, want %d", len(outs), len(big))
	}
}

func (s *suite) paramsReachInit(t *testing.T) {
	h := NewMemHost()
	params := []byte(`{"threshold": 3, "name": "x"}`)
	inst := Instantiate(t, s.rt, "params", plugins.InstanceConfig{Host: h, Params: params})
	if err := Process(context.Background(), inst, Values("a", "b")...); err != nil {
		t.Fatal(err)
	}
	outs := h.Outputs(t)
	if len(outs) != 2 || string(outs[0].Value) != string(params) || string(outs[1].Value) != string(params) {
		t.Fatalf("outputs %+v, want the params %q twice", outs, params)
	}
}

func (s *suite) initFailure(t *testing.T) {
	m := Compile(t, s.rt, "initfail")
	_, err := m.Instantiate(context.Background(), plugins.InstanceConfig{Name: "initfail/0", Host: NewMemHost()})
	var ie *plugins.InitError
	if !errors.As(err, &ie) || ie.Message != "bad params" || ie.Status != 1 {
		t.Fatalf("got %v, want an InitError with status 1 and message %q", err, "bad params")
	}
}

func (s *suite) recordFailureKeepsInstanceUsable(t *testing.T) {
	h := NewMemHost()
	inst := Instantiate(t, s.rt, "fail-on", plugins.InstanceConfig{Host: h})
	err := Process(context.Background(), inst, Values("a", "b", "poison", "c")...)
	var re *plugins.RecordError
	if !errors.As(err, &re) || re.Index != 2 || re.Message != "poison record: poison" {
		t.Fatalf("got %v, want RecordError index 2", err)
	}
	if n := len(h.Emitted()); n != 0 {
		t.Fatalf("failed call emitted %d batches", n)
	}
	if err := Process(context.Background(), inst, Values("a", "b")...); err != nil {
		t.Fatalf("instance unusable after a record failure: %v", err)
	}
	if got := len(h.Outputs(t)); got != 2 {
		t.Fatalf("got %d outputs, want 2", got)
	}
}

func (s *suite) openFileFails(t *testing.T) {
	h := NewMemHost()
	inst := Instantiate(t, s.rt, "openfile", plugins.InstanceConfig{Host: h})
	for _, path := range []string{"", "/etc/hostname", "./go.mod", "../../go.mod"} {
		err := Process(context.Background(), inst, abi.Record{Value: []byte(path)})
		var re *plugins.RecordError
		if !errors.As(err, &re) {
			t.Fatalf("reading %q: got %v, want a RecordError (the guest must not open files)", path, err)
		}
		t.Logf("reading %q: %s", path, re.Message)
	}
	if outs := h.Outputs(t); len(outs) != 0 {
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

func (s *suite) stdoutStderrAndLogCaptured(t *testing.T) {
	h := NewMemHost()
	var stdout, stderr syncBuffer
	inst := Instantiate(t, s.rt, "printer", plugins.InstanceConfig{Host: h, Stdout: &stdout, Stderr: &stderr})
	if err := Process(context.Background(), inst, Values("hello", "world")...); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "stdout: hello\nstdout: world\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := stderr.String(), "stderr: hello\nstderr: world\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	if got, want := strings.Join(h.Logs(), "|"), "log: hello|log: world"; got != want {
		t.Errorf("logs %q, want %q", got, want)
	}
}

// entropy runs three records through the entropy guest with seed and
// returns what it emitted: "wall=<ns> mono=<ns> rand=<hex>" per record.
func (s *suite) entropy(t *testing.T, seed uint64) []string {
	t.Helper()
	h := NewMemHost()
	inst := Instantiate(t, s.rt, "entropy", plugins.InstanceConfig{Host: h, Seed: seed})
	if err := Process(context.Background(), inst, Values("a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, o := range h.Outputs(t) {
		vs = append(vs, string(o.Value))
	}
	return vs
}

// wantEntropy is what the entropy guest must emit for three records with
// seed, on every runtime. The runtime's contract (plugins.InstanceConfig
// Seed):
//
//   - random_get reads one stream: ChaCha8 (math/rand/v2) keyed with the
//     seed as 8 little-endian bytes followed by "sluice random_get" and
//     zeros. The guest's Go runtime takes the first 32 bytes at startup;
//     crypto/rand.Read then takes 16 bytes per record.
//   - The wall clock starts at 2024-01-01T00:00:00Z, the monotonic clock at
//     0, and each advances 1ms per reading and never otherwise. Given the
//     readings the guest makes, record i sees wall = epoch + (i+1)ms and
//     mono (since sluice_init) = (i+2)ms.
func wantEntropy(seed uint64) []string {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "sluice random_get")
	stream := make([]byte, 32+3*16)
	rand.NewChaCha8(key).Read(stream)
	const epoch, ms = int64(1704067200) * 1e9, int64(1e6)
	var want []string
	for i := range int64(3) {
		want = append(want, fmt.Sprintf("wall=%d mono=%d rand=%x", epoch+(i+1)*ms, (i+2)*ms, stream[32+16*i:48+16*i]))
	}
	return want
}

func (s *suite) deterministicClockAndRandom(t *testing.T) {
	a1, a2, b := s.entropy(t, 7), s.entropy(t, 7), s.entropy(t, 8)
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
	// And every runtime gives exactly the same values.
	for seed, got := range map[uint64][]string{7: a1, 8: b} {
		if want := wantEntropy(seed); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("seed %d: the guest saw\n%q\nwant\n%q", seed, got, want)
		}
	}
}

func randOf(s string) string { return s[strings.Index(s, "rand="):] }

func (s *suite) stateFunctions(t *testing.T) {
	h := NewMemHost("s")
	inst := Instantiate(t, s.rt, "stateall", plugins.InstanceConfig{Host: h})
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
	if err := Process(context.Background(), inst, Values(cmds...)...); err != nil {
		t.Fatal(err)
	}
	outs := h.Outputs(t)
	if len(outs) != len(want) {
		t.Fatalf("got %d results, want %d", len(outs), len(want))
	}
	for i := range want {
		if got := string(outs[i].Value); got != want[i] {
			t.Errorf("%q: got %q, want %q", cmds[i], got, want[i])
		}
	}
}

func (s *suite) stateCounter(t *testing.T) {
	h := NewMemHost("s")
	inst := Instantiate(t, s.rt, "state", plugins.InstanceConfig{Host: h})
	rs := []abi.Record{{Key: []byte("x")}, {Key: []byte("y")}, {Key: []byte("x")}}
	if err := Process(context.Background(), inst, rs...); err != nil {
		t.Fatal(err)
	}
	if err := Process(context.Background(), inst, rs[0]); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range h.Outputs(t) {
		got = append(got, string(o.Key)+"="+string(o.Value))
	}
	if strings.Join(got, " ") != "x=1 y=1 x=2 x=3" {
		t.Fatalf("counts %v", got)
	}
}

func (s *suite) instancesAreIsolated(t *testing.T) {
	// Two instances of one compiled module, each with its own host: the
	// counter state of one never shows in the other, and neither does
	// the memory (the params guest keeps its params in guest memory).
	ha, hb := NewMemHost("s"), NewMemHost("s")
	a := Instantiate(t, s.rt, "state", plugins.InstanceConfig{Name: "a", Host: ha})
	b := Instantiate(t, s.rt, "state", plugins.InstanceConfig{Name: "b", Host: hb})
	for range 3 {
		if err := Process(context.Background(), a, abi.Record{Key: []byte("k")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Process(context.Background(), b, abi.Record{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if got := string(hb.Outputs(t)[0].Value); got != "1" {
		t.Fatalf("second instance saw count %s, want 1", got)
	}
	pa := Instantiate(t, s.rt, "params", plugins.InstanceConfig{Name: "pa", Host: ha, Params: []byte("AAAA")})
	pb := Instantiate(t, s.rt, "params", plugins.InstanceConfig{Name: "pb", Host: hb, Params: []byte("BBBB")})
	ha.Reset()
	hb.Reset()
	if err := Process(context.Background(), pa, Values("x")...); err != nil {
		t.Fatal(err)
	}
	if err := Process(context.Background(), pb, Values("x")...); err != nil {
		t.Fatal(err)
	}
	if string(ha.Outputs(t)[0].Value) != "AAAA" || string(hb.Outputs(t)[0].Value) != "BBBB" {
		t.Fatalf("instances share memory: %q %q", ha.Outputs(t)[0].Value, hb.Outputs(t)[0].Value)
	}
}

func (s *suite) compileTwiceReturnsCachedModule(t *testing.T) {
	ctx := context.Background()
	wasm := testguests.Build("echo")
	m1, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.rt.Compile(ctx, bytes.Clone(wasm))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	if want := hex.EncodeToString(sum[:]); m1.SHA256() != want || m2.SHA256() != want {
		t.Fatalf("SHA256 of the two compilations: %q and %q, want %q", m1.SHA256(), m2.SHA256(), want)
	}
	// Both work, and an instance of one does not disturb the other.
	for i, m := range []plugins.Module{m1, m2} {
		h := NewMemHost()
		inst, err := m.Instantiate(ctx, plugins.InstanceConfig{Name: fmt.Sprintf("cached/%d", i), Host: h})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Close(ctx) })
		if err := Process(ctx, inst, Values("a")...); err != nil {
			t.Fatal(err)
		}
		if outs := h.Outputs(t); len(outs) != 1 || string(outs[0].Value) != "a" {
			t.Fatalf("module %d: outputs %+v", i, outs)
		}
	}
}
