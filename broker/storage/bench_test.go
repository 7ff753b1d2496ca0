package storage

import (
	"bytes"
	"testing"

	"github.com/sluice-io/sluice/broker/batch"
)

const (
	benchRecords    = 1000
	benchRecordSize = 100
)

// benchBatch is a producer's batch: 1000 records with 100-byte values.
func benchBatch() []byte {
	var b batch.Builder
	b.Reset(1_700_000_000_000)
	v := bytes.Repeat([]byte{'v'}, benchRecordSize)
	for i := range benchRecords {
		b.Add(int32(i), 1_700_000_000_000+int64(i), nil, v, nil)
	}
	return bytes.Clone(b.Finish())
}

func benchConfig(mode FlushMode) Config {
	cfg := DefaultConfig()
	cfg.FlushMode = mode
	cfg.SegmentBytes = 256 << 20 // roll now and then within a run
	cfg.RetentionMs = -1
	return cfg
}

// BenchmarkAppend appends 1000-record batches. "writers" is the number of
// concurrent producers; under FlushSync their appends share fsyncs.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name    string
		mode    FlushMode
		writers int
	}{
		{"sync/writers=1", FlushSync, 1},
		{"sync/writers=4", FlushSync, 4},
		{"sync/writers=16", FlushSync, 16},
		{"sync/writers=64", FlushSync, 64},
		{"os/writers=1", FlushOS, 1},
		{"os/writers=4", FlushOS, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := OpenPartition(b.TempDir(), benchConfig(bc.mode), quietLogger())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			one := benchBatch()
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			b.ResetTimer()
			if bc.writers == 1 {
				for range b.N {
					if _, err := p.Append(one, 0); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, bc.writers/maxProcs()))
				b.RunParallel(func(pb *testing.PB) {
					mine := bytes.Clone(one) // Append rewrites the header in place
					for pb.Next() {
						if _, err := p.Append(mine, 0); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)*benchRecords/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(p.syncs.Load())/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkRead reads a 64 MiB log front to back, one batch per read and
// 1 MiB per read, reusing the caller's buffer.
func BenchmarkRead(b *testing.B) {
	p, err := OpenPartition(b.TempDir(), benchConfig(FlushOS), quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	one := benchBatch()
	for p.Size() < 64<<20 {
		if _, err := p.Append(one, 0); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name     string
		maxBytes int
	}{{"batch", 1}, {"1MiB", 1 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			perRead := max(len(one), bc.maxBytes/len(one)*len(one))
			b.SetBytes(int64(perRead))
			b.ReportAllocs()
			buf := make([]byte, 0, max(bc.maxBytes, len(one)))
			var off, records int64
			for range b.N {
				out, err := p.ReadInto(buf, off, bc.maxBytes)
				if err != nil {
					b.Fatal(err)
				}
				if len(out) == 0 {
					off = 0
					continue
				}
				for rest := out; len(rest) > 0; {
					h, _ := batch.ParseHeader(rest)
					records += int64(h.RecordCount)
					off = h.NextOffset()
					rest = rest[h.Size():]
				}
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkAppendReplica is a follower storing 1000-record batches as the
// leader sent them.
func BenchmarkAppendReplica(b *testing.B) {
	for _, mode := range []FlushMode{FlushSync, FlushOS} {
		b.Run(mode.String(), func(b *testing.B) {
			p, err := OpenPartition(b.TempDir(), benchConfig(mode), quietLogger())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			one := benchBatch()
			batch.SetLeaderEpoch(one, 1)
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				batch.SetBaseOffset(one, p.LogEndOffset())
				_, pending, err := p.AppendReplica(one)
				if err == nil {
					err = pending.Wait()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)*benchRecords/b.Elapsed().Seconds(), "records/s")
		})
	}
}
