package main

import (
	"bytes"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func TestRecordsPassUnchanged(t *testing.T) {
	host, err := sdktest.Start(sdktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := []sluice.Record{
		{Key: []byte("k"), Value: []byte("v"), Timestamp: 1000,
			Headers: []sluice.Header{{Key: []byte("h"), Value: []byte("x")}, {Key: []byte("n")}}},
		{Timestamp: 500}, // null key and value
		{Key: []byte{}, Value: []byte{}, Timestamp: 2000}, // empty ones
	}
	outs, err := host.Process(in...)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(in) {
		t.Fatalf("%d outputs for %d inputs", len(outs), len(in))
	}
	for i, o := range outs {
		r := in[i]
		if o.Output != 0 || o.Partition != -1 || !o.Timestamp.Equal(r.Time()) ||
			!sameNullable(o.Key, r.Key) || !sameNullable(o.Value, r.Value) || len(o.Headers) != len(r.Headers) {
			t.Errorf("output %d = %+v, want input %+v to output 0 by key", i, o, r)
			continue
		}
		for j, h := range o.Headers {
			if !bytes.Equal(h.Key, r.Headers[j].Key) || !sameNullable(h.Value, r.Headers[j].Value) {
				t.Errorf("output %d header %d = %q, want %q", i, j, h, r.Headers[j])
			}
		}
	}
}

func sameNullable(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
