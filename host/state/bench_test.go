package state

import (
	"fmt"
	"strconv"
	"testing"
)

// BenchmarkGetPutHot is the word count's access pattern: get a counter,
// put it back incremented, over 10k distinct keys that are all cached.
// One op is one get and one put; a call ends every 1000 ops.
func BenchmarkGetPutHot(b *testing.B) {
	f := newFixture(b, "counts")
	s := f.open()
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("word-%05d", i))
	}
	var val []byte
	step := func(i int) {
		k := keys[i%len(keys)]
		v, ok, err := s.Get(0, k)
		if err != nil {
			b.Fatal(err)
		}
		n := uint64(0)
		if ok {
			n, _ = strconv.ParseUint(string(v), 10, 64)
		}
		val = strconv.AppendUint(val[:0], n+1, 10)
		if err := s.Put(0, k, val); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			s.EndCall(true)
		}
	}
	// Warm up: every key known, dirty and flushed once.
	for i := range 2 * len(keys) {
		step(i)
	}
	s.EndCall(true)
	mustFlush(b, s)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		step(i)
	}
	s.EndCall(true)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "getput/s")
}

// BenchmarkFlush measures a checkpoint of 10k dirty keys with 16-byte
// values: changelog append and fsync, then the Pebble batch.
func BenchmarkFlush(b *testing.B) {
	f := newFixture(b, "counts")
	s := f.open()
	const keys = 10_000
	val := make([]byte, 16)
	b.ReportAllocs()
	b.SetBytes(keys * (10 + 16))
	for i := range b.N {
		b.StopTimer()
		for k := range keys {
			val[0] = byte(i)
			if err := s.Put(0, []byte(fmt.Sprintf("word-%05d", k)), val); err != nil {
				b.Fatal(err)
			}
		}
		s.EndCall(true)
		b.StartTimer()
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*keys)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkPutThenScan is a windowed join's access pattern: every record
// writes a new key and then scans (for expired entries, for partners),
// with 50k keys written since the last flush. One op is a put and a scan
// of one small range; a call ends every 100 ops.
func BenchmarkPutThenScan(b *testing.B) {
	f := newFixture(b, "window")
	s := f.open()
	val := []byte("v")
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%09d", i)) }
	for i := range 50_000 {
		if err := s.Put(0, key(i*2), val); err != nil {
			b.Fatal(err)
		}
	}
	s.EndCall(true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := key(100_001 + 2*i)
		if err := s.Put(0, k, val); err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := s.Scan(0, key(2*(i%50_000)), key(2*(i%50_000)+7), func(k, v []byte) bool { n++; return true }); err != nil {
			b.Fatal(err)
		}
		if n != 4 {
			b.Fatalf("scan found %d keys, want 4", n)
		}
		if i%100 == 99 {
			s.EndCall(true)
		}
	}
	s.EndCall(true)
}
