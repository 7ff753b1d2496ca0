// Package storage is sluice's log engine: one Partition is an append-only,
// offset-addressed sequence of Kafka RecordBatch v2 batches kept in a
// directory of segment files.
//
// CONTRACT SKELETON: the signatures below are the API the rest of sluice
// codes against. The implementation replaces the bodies.
package storage

import (
	"errors"
	"log/slog"
	"time"
)

// FlushMode says when appended bytes are fsynced, and so what an
// acknowledged write survives.
type FlushMode int

const (
	// FlushSync (the default) is group commit: Append returns only after the
	// batch is fsynced; appends that arrive together share one fsync. An
	// acknowledged write survives a process crash and a power failure.
	FlushSync FlushMode = iota
	// FlushInterval fsyncs every Config.FlushInterval. Append returns after
	// the write() call: a process crash loses nothing, a power failure can
	// lose up to one interval of acknowledged writes.
	FlushInterval
	// FlushOS never fsyncs on the write path and leaves it to the kernel
	// (segments are still fsynced when they roll and on Close). A power
	// failure can lose whatever the kernel had not written back.
	FlushOS
)

// Config holds the per-partition settings, derived from topic config.
type Config struct {
	SegmentBytes       int64         // roll the active segment past this size (segment.bytes)
	SegmentMs          int64         // roll the active segment after this age, ms (segment.ms)
	IndexIntervalBytes int           // bytes between sparse index entries (index.interval.bytes)
	RetentionMs        int64         // delete closed segments older than this; -1 keeps forever (retention.ms)
	RetentionBytes     int64         // delete oldest closed segments while larger; -1 unlimited (retention.bytes)
	Compact            bool          // cleanup.policy contains "compact"
	Delete             bool          // cleanup.policy contains "delete"
	DeleteRetentionMs  int64         // keep tombstones this long after compaction sees them (delete.retention.ms)
	FlushMode          FlushMode     // see FlushMode
	FlushInterval      time.Duration // for FlushInterval
}

// DefaultConfig is Kafka's defaults with sluice's durable flush policy.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 3600 * 1000,
		IndexIntervalBytes: 4096,
		RetentionMs:        7 * 24 * 3600 * 1000,
		RetentionBytes:     -1,
		Delete:             true,
		DeleteRetentionMs:  24 * 3600 * 1000,
		FlushMode:          FlushSync,
		FlushInterval:      time.Second,
	}
}

// Errors callers branch on; the Kafka front door maps each to an error code.
var (
	ErrOffsetOutOfRange     = errors.New("storage: offset out of range")
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence number")
	ErrDuplicateSequence    = errors.New("storage: duplicate sequence number")
	ErrInvalidProducerEpoch = errors.New("storage: producer epoch is older than the current one")
	ErrCorruptBatch         = errors.New("storage: corrupt record batch")
	ErrClosed               = errors.New("storage: partition is closed")
)

// AppendInfo describes where an append landed.
type AppendInfo struct {
	BaseOffset     int64 // offset of the first record appended
	LastOffset     int64 // offset of the last record appended
	LogAppendTime  int64 // broker time of the append, ms
	LogStartOffset int64
}

// Partition is one partition's log. All methods are safe for concurrent use.
type Partition struct{}

// OpenPartition opens (creating if needed) the partition stored in dir and
// recovers it: a torn or corrupt tail of the active segment is truncated at
// the last valid batch, and missing or damaged indexes are rebuilt.
func OpenPartition(dir string, cfg Config, logger *slog.Logger) (*Partition, error) {
	panic("unimplemented")
}

// Append validates records (one or more concatenated RecordBatch v2, as in a
// produce request), checks idempotent-producer sequences, assigns offsets
// and the leader epoch by rewriting those header fields in place in records,
// and appends the bytes unchanged otherwise. Under FlushSync it returns after
// the data is fsynced. A duplicate of a recently appended batch from the same
// producer returns ErrDuplicateSequence together with the original
// AppendInfo; nothing is written.
func (p *Partition) Append(records []byte, leaderEpoch int32) (AppendInfo, error) {
	panic("unimplemented")
}

// Read returns whole stored batches, as stored, starting with the batch that
// contains offset, up to maxBytes in total. The first batch is returned even
// if it alone exceeds maxBytes, so a consumer can always make progress.
// Nothing at or above the high watermark is returned. Reading exactly at the
// high watermark returns no bytes and no error; below LogStartOffset or above
// the high watermark returns ErrOffsetOutOfRange.
func (p *Partition) Read(offset int64, maxBytes int) ([]byte, error) { panic("unimplemented") }

// LogStartOffset is the first offset still stored.
func (p *Partition) LogStartOffset() int64 { panic("unimplemented") }

// LogEndOffset is the offset the next appended record will get.
func (p *Partition) LogEndOffset() int64 { panic("unimplemented") }

// HighWatermark is the end of what consumers may read: under FlushSync the
// end of fsynced data, otherwise the log end offset.
func (p *Partition) HighWatermark() int64 { panic("unimplemented") }

// OffsetForTimestamp returns the first offset whose record timestamp is at
// least ts, with that timestamp, or (-1, -1, nil) if there is none.
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, err error) {
	panic("unimplemented")
}

// Notify returns a channel that is closed the next time the high watermark
// advances or the partition closes. Long-polling fetches wait on it.
func (p *Partition) Notify() <-chan struct{} { panic("unimplemented") }

// Size is the total number of bytes in all segments.
func (p *Partition) Size() int64 { panic("unimplemented") }

// UpdateConfig changes the partition's settings; new sizes apply from the
// next segment roll.
func (p *Partition) UpdateConfig(cfg Config) { panic("unimplemented") }

// Clean runs retention (if Delete) and compaction (if Compact) once. It never
// touches the active segment and does not block appends or reads for longer
// than a segment swap.
func (p *Partition) Clean(now time.Time) error { panic("unimplemented") }

// Flush fsyncs everything appended so far.
func (p *Partition) Flush() error { panic("unimplemented") }

// Close flushes and closes the partition's files.
func (p *Partition) Close() error { panic("unimplemented") }

// Delete closes the partition and removes its directory.
func (p *Partition) Delete() error { panic("unimplemented") }
