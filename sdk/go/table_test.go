package sluice_test

import (
	"errors"
	"math"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func TestInt64Codec(t *testing.T) {
	for _, n := range []int64{0, 1, -1, 42, math.MaxInt64, math.MinInt64} {
		b := sluice.Int64.Append(nil, n)
		got, err := sluice.Int64.Decode(b)
		if err != nil || got != n {
			t.Errorf("round trip of %d via %q = %d, %v", n, b, got, err)
		}
	}
	for _, bad := range []string{"", "-", "1a", " 1", "+1", "9223372036854775808", "-9223372036854775809", "12345678901234567890"} {
		if _, err := sluice.Int64.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
	if got := string(sluice.Int64.Append([]byte("n="), -7)); got != "n=-7" {
		t.Errorf("Append = %q", got)
	}
}

func TestBytesCodecCopies(t *testing.T) {
	src := []byte("abc")
	got, _ := sluice.Bytes.Decode(src)
	src[0] = 'X'
	if string(got) != "abc" {
		t.Errorf("decoded bytes alias the input: %q", got)
	}
	if got, _ := sluice.Bytes.Decode([]byte{}); got == nil {
		t.Error("decoding an empty value returned nil")
	}
}

func TestTable(t *testing.T) {
	type point struct{ X, Y int }
	counts := sluice.NewTable("t-counts", sluice.String, sluice.Int64)
	points := sluice.NewTable("t-points", sluice.String, sluice.JSON[point]())
	var host *sdktest.Host
	run(t, &host, []string{"t-counts", "t-points"}, func() error {
		for _, w := range []string{"b", "a", "b", "c", "b"} {
			n, _, err := counts.Get(w)
			if err != nil {
				return err
			}
			if err := counts.Put(w, n+1); err != nil {
				return err
			}
		}
		if err := counts.Delete("c"); err != nil {
			return err
		}
		return points.Put("p", point{1, 2})
	})
	if st := host.State("t-counts"); len(st) != 2 || st["a"] != "1" || st["b"] != "3" {
		t.Errorf("counts store = %v, want a=1 b=3 as decimal ASCII", st)
	}
	if st := host.State("t-points"); st["p"] != `{"X":1,"Y":2}` {
		t.Errorf("points store = %v", st)
	}
	run(t, &host, nil, func() error {
		var got []string
		for k, v := range counts.All() {
			got = append(got, k+"="+string(sluice.Int64.Append(nil, v)))
		}
		if counts.Err() != nil || len(got) != 2 || got[0] != "a=1" || got[1] != "b=3" {
			t.Errorf("All = %v, err %v", got, counts.Err())
		}
		got = nil
		for k := range counts.Range("b", "z") {
			got = append(got, k)
		}
		if len(got) != 1 || got[0] != "b" {
			t.Errorf("Range(b, z) = %v", got)
		}
		p, found, err := points.Get("p")
		if err != nil || !found || p != (point{1, 2}) {
			t.Errorf("points.Get = %v, %v, %v", p, found, err)
		}
		return nil
	})

	// A value the codec cannot decode is an error naming the key.
	host.SetState("t-counts", "bad", "x1")
	run(t, &host, nil, func() error {
		if _, _, err := counts.Get("bad"); err == nil {
			t.Error("Get of an undecodable value succeeded")
		}
		for range counts.All() {
		}
		if err := counts.Err(); err == nil || errors.Is(err, sluice.ErrHost) {
			t.Errorf("All over an undecodable value: err = %v, want a decoding error", err)
		}
		return nil
	})
}
