package sluice_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func TestTimeKeysSortLikeTimestamps(t *testing.T) {
	ts := []int64{math.MinInt64, -1 << 40, -2, -1, 0, 1, 255, 256, 1_700_000_000_000, math.MaxInt64}
	var keys [][]byte
	for _, v := range ts {
		k := sluice.AppendTimeKey([]byte("p"), v)[1:]
		if len(k) != 8 {
			t.Fatalf("time key of %d has %d bytes", v, len(k))
		}
		got, ok := sluice.DecodeTimeKey(append(k, "rest"...))
		if !ok || got != v {
			t.Fatalf("DecodeTimeKey(AppendTimeKey(%d)) = %d, %v", v, got, ok)
		}
		keys = append(keys, k)
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		t.Fatalf("time keys are not in timestamp order: %x", keys)
	}
	if k := sluice.AppendTimeKey(nil, 1000); fmt.Sprintf("%x", k) != "80000000000003e8" {
		t.Fatalf("time key of 1000 = %x, want 80000000000003e8", k)
	}
	if _, ok := sluice.DecodeTimeKey(make([]byte, 7)); ok {
		t.Fatal("DecodeTimeKey of 7 bytes must fail")
	}
}

func TestRecordStreamTime(t *testing.T) {
	var got []int64
	host := start(t, sdktest.Config{}, func(r *sluice.Record, out *sluice.Emitter) error {
		got = append(got, r.StreamTime)
		return nil
	})
	if st := host.StreamTime(); st != -1 {
		t.Fatalf("stream time after Start = %d, want -1", st)
	}
	rec := func(ts int64) sluice.Record { return sluice.Record{Timestamp: ts, StreamTime: 999_999} }
	// No timestamp yet, then out of order, then -1 (none) which does not count.
	if _, err := host.Process(rec(-1), rec(50), rec(20), rec(-1), rec(70)); err != nil {
		t.Fatal(err)
	}
	if want := []int64{-1, 50, 50, 50, 70}; !slices.Equal(got, want) {
		t.Fatalf("stream times %v, want %v", got, want)
	}
	// The next batch starts from the host's stream time.
	got = nil
	if _, err := host.Process(rec(60), rec(80)); err != nil {
		t.Fatal(err)
	}
	if want := []int64{70, 80}; !slices.Equal(got, want) {
		t.Fatalf("second batch: stream times %v, want %v", got, want)
	}
	got = nil
	host.SetStreamTime(1000)
	if _, err := host.Process(rec(900)); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1000}; !slices.Equal(got, want) || host.StreamTime() != 1000 {
		t.Fatalf("after SetStreamTime(1000): stream times %v (host %d), want %v", got, host.StreamTime(), want)
	}
}

// TestStreamTimeIndependentOfBatchCuts checks that every record gets the
// same stream time however the records are cut into batches.
func TestStreamTimeIndependentOfBatchCuts(t *testing.T) {
	tss := []int64{5, -1, 3, 9, 9, 2, 12, 0, 11, 30, -1, 29}
	var want []int64
	for cut := 1; cut <= len(tss); cut++ {
		var got []int64
		host := start(t, sdktest.Config{}, func(r *sluice.Record, out *sluice.Emitter) error {
			got = append(got, r.StreamTime)
			return nil
		})
		for i := 0; i < len(tss); i += cut {
			var recs []sluice.Record
			for _, ts := range tss[i:min(i+cut, len(tss))] {
				recs = append(recs, sluice.Record{Timestamp: ts})
			}
			if _, err := host.Process(recs...); err != nil {
				t.Fatal(err)
			}
		}
		if want == nil {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Fatalf("batches of %d: stream times %v, want %v", cut, got, want)
		}
	}
	if fmt.Sprint(want) != "[5 5 5 9 9 9 12 12 12 30 30 30]" {
		t.Fatalf("stream times %v", want)
	}
}

func TestTableStoreIsReadOnlyAndNotCached(t *testing.T) {
	profiles := sluice.NewTableStore("sdk-profiles")
	typed := sluice.NewTable("sdk-profiles", sluice.String, sluice.String)
	if !profiles.IsTable() || typed.Store() != profiles {
		t.Fatal("NewTableStore and NewTable of the same name must share the read-only store")
	}
	var seen []string
	host := start(t, sdktest.Config{Tables: []string{"sdk-profiles"}}, func(r *sluice.Record, out *sluice.Emitter) error {
		v, found, err := profiles.Get(r.Key)
		if err != nil {
			return err
		}
		seen = append(seen, fmt.Sprintf("%s=%s/%v", r.Key, v, found))
		if string(r.Value) == "write" {
			return profiles.Put(r.Key, []byte("x"))
		}
		if string(r.Value) == "delete" {
			return typed.Delete(string(r.Key))
		}
		var keys []string
		for k, v := range profiles.Scan(nil, nil) {
			keys = append(keys, string(k)+":"+string(v))
		}
		if err := profiles.Err(); err != nil {
			return err
		}
		out.Emit(r.Key, []byte(strings.Join(keys, ",")))
		return nil
	})
	host.SetTableRow("sdk-profiles", []byte("u1"), []byte("alice"))
	outs, err := host.Process(sluice.Record{Key: []byte("u1")}, sluice.Record{Key: []byte("u2")})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || string(outs[0].Value) != "u1:alice" {
		t.Fatalf("outputs %+v", outs)
	}
	// The host changes the table between calls: the next call sees it.
	host.SetTableRow("sdk-profiles", []byte("u1"), []byte("bob"))
	host.SetTableRow("sdk-profiles", []byte("u2"), []byte("carol"))
	if _, err := host.Process(sluice.Record{Key: []byte("u1")}, sluice.Record{Key: []byte("u2")}); err != nil {
		t.Fatal(err)
	}
	host.SetTableRow("sdk-profiles", []byte("u1"), nil)
	if _, err := host.Process(sluice.Record{Key: []byte("u1")}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"u1=alice/true", "u2=/false", "u1=bob/true", "u2=carol/true", "u1=/false"}; !slices.Equal(seen, want) {
		t.Fatalf("table reads %q, want %q", seen, want)
	}
	for _, op := range []string{"write", "delete"} {
		_, err = host.Process(sluice.Record{Key: []byte("u2"), Value: []byte(op)})
		var re *sdktest.RecordError
		if !errors.As(err, &re) || !strings.Contains(re.Message, `table "sdk-profiles"`) || !strings.Contains(re.Message, "read-only") {
			t.Fatalf("%s on a table: got %v, want a record error saying the table is read-only", op, err)
		}
	}
	if err := profiles.Put([]byte("k"), nil); !errors.Is(err, sluice.ErrReadOnly) {
		t.Fatalf("Put outside a call: %v, want ErrReadOnly", err)
	}
	if got := host.State("sdk-profiles"); fmt.Sprint(got) != "map[u2:carol]" {
		t.Fatalf("table content %v", got)
	}
}

func TestSDKTestTableRefusesHostWrites(t *testing.T) {
	host := start(t, sdktest.Config{Stores: []string{"s"}, Tables: []string{"t"}}, func(r *sluice.Record, out *sluice.Emitter) error { return nil })
	if h := host.StoreOpen("t"); h != 1 {
		t.Fatalf("table handle %d, want 1", h)
	}
	if c := host.StatePut(1, []byte("k"), []byte("v")); c != -7 {
		t.Fatalf("state_put on a table returned %d, want -7 (ErrNotAllowed)", c)
	}
}
