package storage

import (
	"errors"
	"math"
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

func (m FlushMode) String() string {
	switch m {
	case FlushSync:
		return "sync"
	case FlushInterval:
		return "interval"
	case FlushOS:
		return "os"
	}
	return "unknown"
}

// Config holds the per-partition settings, derived from topic config.
type Config struct {
	SegmentBytes       int64         // roll the active segment past this size (segment.bytes)
	SegmentMs          int64         // roll the active segment after this age, ms (segment.ms)
	IndexIntervalBytes int           // bytes between sparse index entries (index.interval.bytes)
	RetentionMs        int64         // delete closed segments older than this; -1 keeps forever (retention.ms)
	RetentionBytes     int64         // delete oldest closed segments while larger; -1 unlimited (retention.bytes)
	Compact            bool          // cleanup.policy contains "compact"
	Delete             bool          // cleanup.policy contains "delete"
	DeleteRetentionMs  int64         // keep tombstones this long after their timestamp (delete.retention.ms)
	FlushMode          FlushMode     // see FlushMode
	FlushInterval      time.Duration // for FlushInterval

	// ExternalHW is cluster mode: appends and fsyncs never move the high
	// watermark, only SetHighWatermark does, because what consumers may
	// read depends on what the followers have, which the partition cannot
	// know. Switching it off publishes the high watermark as the flush
	// mode would.
	ExternalHW bool
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

// maxSegmentBytes keeps every batch position inside the uint32 of an index
// entry even when one request overshoots the roll threshold.
const maxSegmentBytes = math.MaxInt32

// sanitize replaces values the engine cannot work with by defaults, so a
// zero or half-filled Config still yields a working partition.
func (c Config) sanitize() Config {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.SegmentBytes > maxSegmentBytes {
		c.SegmentBytes = maxSegmentBytes
	}
	if c.SegmentMs <= 0 {
		c.SegmentMs = d.SegmentMs
	}
	if c.IndexIntervalBytes < 0 {
		c.IndexIntervalBytes = d.IndexIntervalBytes
	}
	if c.DeleteRetentionMs < 0 {
		c.DeleteRetentionMs = 0
	}
	if c.FlushMode < FlushSync || c.FlushMode > FlushOS {
		c.FlushMode = FlushSync
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = d.FlushInterval
	}
	return c
}

// Errors callers branch on; the Kafka front door maps each to an error code.
var (
	ErrOffsetOutOfRange     = errors.New("storage: offset out of range")
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence number")
	ErrDuplicateSequence    = errors.New("storage: duplicate sequence number")
	ErrInvalidProducerEpoch = errors.New("storage: producer epoch is older than the current one")
	ErrCorruptBatch         = errors.New("storage: corrupt record batch")
	ErrClosed               = errors.New("storage: partition is closed")
	ErrOffsetMismatch       = errors.New("storage: replica batch does not start at the log end")
)

// errTruncated fails a Pending.Wait whose append may have been removed by a
// truncation before it became durable. It is conservative: an append that
// survived a truncation above it but was not yet durable fails too, which
// only means it is not acknowledged.
var errTruncated = errors.New("storage: log truncated before the append was durable")

// AppendInfo describes where an append landed.
type AppendInfo struct {
	BaseOffset     int64 // offset of the first record appended
	LastOffset     int64 // offset of the last record appended
	LogAppendTime  int64 // broker time of the append, ms
	LogStartOffset int64
}
