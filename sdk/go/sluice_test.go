package sluice_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

// start registers h as the operator (no init hook) and starts a host.
func start(t *testing.T, cfg sdktest.Config, h sluice.HandlerFunc) *sdktest.Host {
	t.Helper()
	sluice.OnInit(nil)
	sluice.Handle(h)
	host, err := sdktest.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return host
}

func TestRecordFieldsReachTheHandler(t *testing.T) {
	type seen struct {
		input, partition int
		offset           int64
		ts               time.Time
		key, value       []byte
		keyNil, valueNil bool
		headers          []sluice.Header
	}
	var got []seen
	host := start(t, sdktest.Config{Partition: 3}, func(r *sluice.Record, out *sluice.Emitter) error {
		s := seen{input: r.Input, partition: r.Partition, offset: r.Offset, ts: r.Time(),
			key: bytes.Clone(r.Key), value: bytes.Clone(r.Value), keyNil: r.Key == nil, valueNil: r.Value == nil}
		for _, h := range r.Headers {
			s.headers = append(s.headers, sluice.Header{Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)})
		}
		got = append(got, s)
		return nil
	})
	ts := time.UnixMilli(1_700_000_000_123).UTC()
	_, err := host.Process(
		sluice.Record{Input: 1, Offset: 41, Timestamp: ts.UnixMilli(), Key: []byte("k"), Value: []byte{},
			Headers: []sluice.Header{{Key: []byte("h1"), Value: []byte("v1")}, {Key: []byte("h2")}}},
		sluice.Record{Offset: 42, Timestamp: ts.Add(time.Second).UnixMilli()},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("handler saw %d records, want 2", len(got))
	}
	a, b := got[0], got[1]
	if a.input != 1 || a.partition != 3 || a.offset != 41 || !a.ts.Equal(ts) {
		t.Errorf("record 0: input %d partition %d offset %d ts %v", a.input, a.partition, a.offset, a.ts)
	}
	if string(a.key) != "k" || a.keyNil || a.valueNil || len(a.value) != 0 {
		t.Errorf("record 0: key %q (nil %v), value %q (nil %v); want key k, empty non-nil value", a.key, a.keyNil, a.value, a.valueNil)
	}
	if len(a.headers) != 2 || string(a.headers[0].Value) != "v1" || a.headers[1].Value != nil {
		t.Errorf("record 0 headers = %q, want h1=v1 and h2=null", a.headers)
	}
	if !b.keyNil || !b.valueNil || b.offset != 42 || !b.ts.Equal(ts.Add(time.Second)) || len(b.headers) != 0 {
		t.Errorf("record 1 = %+v, want null key and value, offset 42, no headers", b)
	}
}

func TestOutputsAreBufferedIntoOneEmit(t *testing.T) {
	ts := time.UnixMilli(5_000).UTC()
	host := start(t, sdktest.Config{Outputs: 2, OutputPartitions: 4}, func(r *sluice.Record, out *sluice.Emitter) error {
		out.Emit(r.Key, r.Value)
		out.EmitTo(1, nil, []byte("second"))
		out.EmitRecord(sluice.Output{Output: 1, Partition: sluice.ToPartition(3), Timestamp: ts,
			Key: []byte("x"), Headers: []sluice.Header{{Key: []byte("h"), Value: []byte("v")}}})
		return nil
	})
	rts := time.UnixMilli(1_000).UTC()
	outs, err := host.Process(
		sluice.Record{Key: []byte("a"), Value: []byte("1"), Timestamp: rts.UnixMilli()},
		sluice.Record{Key: []byte("b"), Value: []byte("2"), Timestamp: rts.Add(time.Millisecond).UnixMilli()},
	)
	if err != nil {
		t.Fatal(err)
	}
	if host.EmitCalls() != 1 {
		t.Errorf("emit calls = %d, want 1 for the batch", host.EmitCalls())
	}
	if len(outs) != 6 {
		t.Fatalf("got %d outputs, want 6", len(outs))
	}
	want := []string{
		"0 -1 1000 a=1 []",
		"1 -1 1000 <nil>=second []",
		"1 3 5000 x=<nil> [h=v]",
		"0 -1 1001 b=2 []",
		"1 -1 1001 <nil>=second []",
		"1 3 5000 x=<nil> [h=v]",
	}
	for i, o := range outs {
		var hs []string
		for _, h := range o.Headers {
			hs = append(hs, fmt.Sprintf("%s=%s", h.Key, h.Value))
		}
		got := fmt.Sprintf("%d %d %d %s=%s %v", o.Output, o.Partition, o.Timestamp.UnixMilli(), nullable(o.Key), nullable(o.Value), hs)
		if got != want[i] {
			t.Errorf("output %d = %q, want %q", i, got, want[i])
		}
	}
	// A batch with no outputs makes no emit call.
	host2 := start(t, sdktest.Config{}, func(*sluice.Record, *sluice.Emitter) error { return nil })
	if _, err := host2.Process(sluice.Record{}); err != nil || host2.EmitCalls() != 0 {
		t.Errorf("silent batch: err %v, emit calls %d; want nil, 0", err, host2.EmitCalls())
	}
}

func nullable(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return string(b)
}

func TestHandlerErrorFailsTheRecordAndDropsTheBatch(t *testing.T) {
	counts := sluice.NewTable("fail-counts", sluice.String, sluice.Int64)
	host := start(t, sdktest.Config{Stores: []string{"fail-counts"}}, func(r *sluice.Record, out *sluice.Emitter) error {
		if err := counts.Put(string(r.Key), 1); err != nil {
			return err
		}
		if string(r.Value) == "bad" {
			return fmt.Errorf("cannot handle %q", r.Key)
		}
		out.Emit(r.Key, r.Value)
		return nil
	})
	outs, err := host.Process(
		sluice.Record{Key: []byte("a"), Value: []byte("ok")},
		sluice.Record{Key: []byte("b"), Value: []byte("ok")},
		sluice.Record{Key: []byte("c"), Value: []byte("bad")},
		sluice.Record{Key: []byte("d"), Value: []byte("ok")},
	)
	var re *sdktest.RecordError
	if !errors.As(err, &re) || re.Index != 2 || re.Message != `cannot handle "c"` {
		t.Fatalf("err = %v, want record 2 failed with the handler's message", err)
	}
	if outs != nil || host.EmitCalls() != 0 {
		t.Errorf("outputs %v, emit calls %d; want none: the failed batch's outputs are dropped", outs, host.EmitCalls())
	}
	if st := host.State("fail-counts"); len(st) != 0 {
		t.Errorf("state after failed batch = %v, want empty", st)
	}
	// The instance stays usable, and its buffers hold nothing of the
	// failed batch.
	outs, err = host.Process(sluice.Record{Key: []byte("e"), Value: []byte("ok")})
	if err != nil || len(outs) != 1 || string(outs[0].Key) != "e" {
		t.Fatalf("next batch: outs %v, err %v; want just e", outs, err)
	}
}

func TestPanicFailsTheRecord(t *testing.T) {
	host := start(t, sdktest.Config{}, func(r *sluice.Record, out *sluice.Emitter) error {
		if r.Offset == 7 {
			var m map[string]int
			m["boom"]++
		}
		out.Emit(nil, r.Value)
		return nil
	})
	_, err := host.Process(sluice.Record{Offset: 6}, sluice.Record{Offset: 7})
	var re *sdktest.RecordError
	if !errors.As(err, &re) || re.Index != 1 || !strings.HasPrefix(re.Message, "panic: ") || !strings.Contains(re.Message, "nil map") {
		t.Fatalf("err = %v, want record 1 failed with the panic", err)
	}
	logs := host.Logs()
	if len(logs) != 1 || logs[0].Level != sluice.LevelError || !strings.Contains(logs[0].Message, "goroutine") {
		t.Errorf("logs = %v, want one error entry with the stack", logs)
	}
}

func TestRefusedOutputFailsTheRecordThatEmittedIt(t *testing.T) {
	host := start(t, sdktest.Config{Outputs: 2, OutputPartitions: 2}, func(r *sluice.Record, out *sluice.Emitter) error {
		switch string(r.Value) {
		case "bad-output":
			out.EmitTo(5, nil, r.Value)
		case "bad-partition":
			out.EmitRecord(sluice.Output{Output: 1, Partition: sluice.ToPartition(9), Value: r.Value})
		default:
			out.EmitTo(1, nil, r.Value)
		}
		return nil
	})
	for _, c := range []struct {
		value string
		want  string
	}{
		{"bad-output", "emit to output 5, partition by key: unknown output or partition"},
		{"bad-partition", "emit to output 1, partition 9: unknown output or partition"},
	} {
		_, err := host.Process(sluice.Record{Value: []byte("ok")}, sluice.Record{Value: []byte("ok")},
			sluice.Record{Value: []byte(c.value)}, sluice.Record{Value: []byte("ok")})
		var re *sdktest.RecordError
		if !errors.As(err, &re) || re.Index != 2 || re.Message != c.want {
			t.Errorf("%s: err = %v, want record 2 failed with %q", c.value, err, c.want)
		}
	}
}

func TestInitFailures(t *testing.T) {
	sluice.OnInit(nil)
	sluice.Handle(nil)
	_, err := sdktest.Start(sdktest.Config{})
	var ie *sdktest.InitError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, "sluice.Handle") {
		t.Errorf("no handler: err = %v, want an init error telling to call sluice.Handle", err)
	}

	sluice.Handle(func(*sluice.Record, *sluice.Emitter) error { return nil })
	sluice.OnInit(func(p sluice.Params) error {
		if p.String("mode", "fast") != "fast" {
			return errors.New("only fast mode is supported")
		}
		return nil
	})
	if _, err := sdktest.Start(sdktest.Config{Params: map[string]any{"mode": "slow"}}); !errors.As(err, &ie) || ie.Message != "only fast mode is supported" {
		t.Errorf("OnInit error: err = %v", err)
	}
	if _, err := sdktest.Start(sdktest.Config{Params: []byte(`[1,2]`)}); !errors.As(err, &ie) || !strings.Contains(ie.Message, "JSON object") {
		t.Errorf("array params: err = %v, want an init error about a JSON object", err)
	}
	sluice.OnInit(func(p sluice.Params) error { panic("no config") })
	if _, err := sdktest.Start(sdktest.Config{}); !errors.As(err, &ie) || ie.Message != "panic: no config" {
		t.Errorf("panicking init: err = %v", err)
	}
	sluice.OnInit(nil)
	if _, err := sdktest.Start(sdktest.Config{}); err != nil {
		t.Errorf("handler and no init hook: %v", err)
	}
}
