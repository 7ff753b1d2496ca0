package sluice_test

import (
	"fmt"
	"testing"

	"github.com/sluice-io/sluice/abi"
	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/internal/hostbridge"
)

// discardHost accepts everything and keeps nothing, so that a measurement
// of the SDK's hot path counts only the SDK's own work.
type discardHost struct {
	emitted int
	value   []byte
}

func (h *discardHost) Emit(batch []byte) int32     { h.emitted += len(batch); return 0 }
func (h *discardHost) StoreOpen(name string) int32 { return 0 }
func (h *discardHost) StateGet(_ int32, _, buf []byte) int32 {
	copy(buf, h.value)
	return int32(len(h.value))
}
func (h *discardHost) StatePut(int32, []byte, []byte) int32          { return 0 }
func (h *discardHost) StateDelete(int32, []byte) int32               { return 0 }
func (h *discardHost) StateScan(int32, []byte, []byte, []byte) int32 { return 0 }
func (h *discardHost) Log(int32, string)                             {}
func (h *discardHost) SetError(int32, string)                        {}
func (h *discardHost) StreamTime() int64                             { return 1_700_000_000_000 }

// batchFor encodes n records of 100-byte values into a region obtained
// from the SDK's allocator, as the host does.
func batchFor(n int) []byte {
	var b []byte
	b = append(b, make([]byte, abi.BatchHeaderSize)...)
	abi.PutBatchHeader(b, abi.BatchHeader{Count: uint32(n)})
	value := make([]byte, 100)
	for i := range n {
		key := []byte(fmt.Sprintf("key-%d", i%1000))
		b = abi.AppendRecord(b, &abi.Record{Offset: int64(i), Timestamp: 1_700_000_000_000, Key: key, Value: value,
			Headers: []abi.Header{{Key: []byte("h"), Value: []byte("v")}}})
	}
	region := hostbridge.Guest.Alloc(int32(len(b)))
	copy(region, b)
	return region
}

func installDiscardHost(t testing.TB) *discardHost {
	h := &discardHost{value: []byte("12345")}
	prev := hostbridge.Current
	hostbridge.Current = h
	hostbridge.Guest.Reset()
	t.Cleanup(func() { hostbridge.Current = prev })
	return h
}

func passThrough(r *sluice.Record, out *sluice.Emitter) error {
	out.EmitRecord(sluice.Output{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Time()})
	return nil
}

var countTable = sluice.NewTable("alloc-counts", sluice.Bytes, sluice.Int64)

func countKeys(r *sluice.Record, out *sluice.Emitter) error {
	n, _, err := countTable.Get(r.Key)
	if err != nil {
		return err
	}
	if err := countTable.Put(r.Key, n+1); err != nil {
		return err
	}
	out.Emit(r.Key, r.Value)
	return nil
}

var (
	allocTable  = sluice.NewTableStore("alloc-table")
	allocWindow = sluice.NewStore("alloc-window")
	allocKey    []byte
)

// windowed reads a table, keeps a time-keyed entry per record and expires
// entries by scan: the pattern of a join with expiring state.
func windowed(r *sluice.Record, out *sluice.Emitter) error {
	if _, _, err := allocTable.Get(r.Key); err != nil {
		return err
	}
	allocKey = append(sluice.AppendTimeKey(allocKey[:0], r.Timestamp), r.Key...)
	if err := allocWindow.Put(allocKey, r.Value); err != nil {
		return err
	}
	allocKey = sluice.AppendTimeKey(allocKey[:0], r.StreamTime-60_000)
	for k := range allocWindow.Scan(nil, allocKey) {
		if err := allocWindow.Delete(k); err != nil {
			return err
		}
	}
	if err := allocWindow.Err(); err != nil {
		return err
	}
	out.Emit(r.Key, r.Value)
	return nil
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	for name, h := range map[string]sluice.HandlerFunc{"pass-through": passThrough, "typed state": countKeys, "table and time keys": windowed} {
		t.Run(name, func(t *testing.T) {
			host := installDiscardHost(t)
			sluice.OnInit(nil)
			sluice.Handle(h)
			batch := batchFor(500)
			if status := hostbridge.Guest.Init(nil); status != 0 {
				t.Fatalf("init status %d", status)
			}
			allocs := testing.AllocsPerRun(20, func() {
				if status := hostbridge.Guest.Process(batch); status != 0 {
					t.Fatalf("process status %d", status)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per 500-record batch, want 0", allocs)
			}
			if host.emitted == 0 {
				t.Error("nothing emitted")
			}
		})
	}
}

// BenchmarkProcess measures the SDK's side of a batch (decode, handler,
// output encoding) natively; in Wasm the same code runs a few times slower.
func BenchmarkProcess(b *testing.B) {
	for name, h := range map[string]sluice.HandlerFunc{"pass-through": passThrough, "typed-state": countKeys} {
		b.Run(name, func(b *testing.B) {
			installDiscardHost(b)
			sluice.OnInit(nil)
			sluice.Handle(h)
			const n = 1000
			batch := batchFor(n)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				hostbridge.Guest.Process(batch)
			}
			b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "records/s")
		})
	}
}
