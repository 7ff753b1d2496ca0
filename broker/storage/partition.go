package storage

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxRel is the largest offset distance from a segment's base that an
// index entry can hold; a segment rolls before it would be exceeded.
const maxRel = math.MaxUint32

// Partition is one partition's log. All methods are safe for concurrent use.
type Partition struct {
	dir string
	log *slog.Logger

	// mu serializes appends, rolls and config changes; it guards the fields
	// below up to segMu.
	mu        sync.Mutex
	cfg       Config
	active    *segment
	producers producerTable
	staged    []stagedProducer // scratch for one append
	closed    bool
	flusher   *intervalFlusher
	// fireDue is set when the durable end advanced under mu; the OnDurable
	// callback runs once mu is released (it must see no storage lock).
	fireDue bool

	// epochs is the leader-epoch cache (epochs.go), replaced copy-on-write
	// under mu and epochMu so that readers only need epochMu shared.
	epochMu sync.RWMutex
	epochs  []EpochEntry

	// segMu guards the segment list and the file handles' lifetime.
	segMu       sync.RWMutex
	segs        []*segment
	filesClosed bool

	leo atomic.Int64 // log end offset: next offset to assign
	hw  atomic.Int64 // high watermark: end of what Read serves
	lso atomic.Int64 // log start offset: base of the first segment

	// durEnd is DurableEnd: the fsynced end under FlushSync, the log end
	// otherwise. Raised under mu or syncMu (CAS max); only truncation,
	// holding both, lowers it (and hw).
	durEnd     atomic.Int64
	externalHW atomic.Bool // mirrors cfg.ExternalHW for lock-free readers
	onDurable  atomic.Pointer[func(int64)]
	// truncGen counts truncations. A Pending and an in-flight group-commit
	// fsync remember it, so that neither publishes or waits for offsets a
	// truncation took away. Changed under mu and segMu.
	truncGen atomic.Int64

	// Group commit state (flush.go).
	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool
	durable  int64 // every offset below is fsynced
	syncErr  error
	syncs    atomic.Int64 // fsyncs done by group commit, for tests and metrics

	failMu sync.Mutex
	failed error

	notifyMu   sync.Mutex
	notifyCh   chan struct{}
	notifyDone bool
	// appendCh is NotifyAppend's channel; appendWaiting lets the append
	// path skip notifyMu when nobody waits.
	appendCh      chan struct{}
	appendWaiting atomic.Bool

	// cleanMu serializes Clean with itself and with Close.
	cleanMu     sync.Mutex
	cleanedUpTo int64 // closed segments below this offset are compacted

	testSyncHook func() // runs before each group-commit fsync, in tests
}

// OpenPartition opens (creating if needed) the partition stored in dir and
// recovers it: a torn or corrupt tail of the active segment is truncated at
// the last valid batch, and missing or damaged indexes are rebuilt.
func OpenPartition(dir string, cfg Config, logger *slog.Logger) (*Partition, error) {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Partition{dir: dir, log: logger, cfg: cfg.sanitize()}
	p.syncCond = sync.NewCond(&p.syncMu)
	p.externalHW.Store(p.cfg.ExternalHW)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: open partition: %w", err)
	}
	if err := p.recover(); err != nil {
		p.closeFiles()
		return nil, fmt.Errorf("storage: open partition %s: %w", dir, err)
	}
	if p.cfg.ExternalHW {
		// What was committed before the restart is not known here (Kafka
		// keeps a high watermark checkpoint; sluice leaves it to the
		// replication layer), and the recovered tail may never have
		// reached the other replicas. Exposing nothing is the safe start;
		// the leader raises it once its in-sync replicas report back.
		p.hw.Store(p.lso.Load())
	}
	if p.cfg.FlushMode == FlushInterval {
		p.flusher = p.startFlusher(p.cfg.FlushInterval)
	}
	return p, nil
}

// LogStartOffset is the first offset still stored.
func (p *Partition) LogStartOffset() int64 { return p.lso.Load() }

// LogEndOffset is the offset the next appended record will get.
func (p *Partition) LogEndOffset() int64 { return p.leo.Load() }

// HighWatermark is the end of what consumers may read: under FlushSync the
// end of fsynced data, otherwise the log end offset. With ExternalHW it is
// whatever SetHighWatermark last set (clamped to DurableEnd).
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// Size is the total number of bytes in all segments.
func (p *Partition) Size() int64 {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	var n int64
	for _, s := range p.segs {
		n += s.size.Load()
	}
	return n
}

// UpdateConfig changes the partition's settings; new sizes apply from the
// next segment roll.
func (p *Partition) UpdateConfig(cfg Config) {
	cfg = cfg.sanitize()
	p.mu.Lock()
	old := p.cfg
	p.cfg = cfg
	var stop *intervalFlusher
	if !p.closed && (cfg.FlushMode != old.FlushMode || cfg.FlushInterval != old.FlushInterval) {
		stop, p.flusher = p.flusher, nil
		if cfg.FlushMode == FlushInterval {
			p.flusher = p.startFlusher(cfg.FlushInterval)
		}
	}
	p.externalHW.Store(cfg.ExternalHW)
	if cfg.FlushMode != FlushSync {
		// The weaker modes count everything written as durable.
		p.raiseDurableEnd(p.leo.Load())
		p.fireDue = true
	}
	if !cfg.ExternalHW {
		// Covers switching ExternalHW off: the HW catches up with what
		// the flush mode would have published meanwhile.
		p.publishHW(p.durEnd.Load())
	}
	fire := p.takeFire()
	p.mu.Unlock()
	stop.stop()
	if fire {
		p.fireOnDurable()
	}
}

func (p *Partition) config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

func (p *Partition) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close flushes and closes the partition's files.
func (p *Partition) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	fl := p.flusher
	p.flusher = nil
	p.mu.Unlock()
	fl.stop()

	// Wait for a running Clean; it notices closed and stops early.
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()

	// No append can start now, so this covers every acknowledged write
	// and wakes appenders still waiting for their fsync.
	err := p.waitDurable(p.leo.Load(), p.truncGen.Load())
	if err == nil && p.failure() == nil {
		// Only a healthy log gets a snapshot: after a failure the state in
		// memory may be ahead of what is on disk.
		p.mu.Lock()
		err = p.writeSnapshot(p.leo.Load())
		p.mu.Unlock()
	}
	if cerr := p.closeFiles(); err == nil {
		err = cerr
	}
	p.closeNotify()
	if err != nil {
		return fmt.Errorf("storage: close %s: %w", p.dir, err)
	}
	return nil
}

// closeFiles closes every segment file; reads fail with ErrClosed after.
func (p *Partition) closeFiles() error {
	p.segMu.Lock()
	defer p.segMu.Unlock()
	p.filesClosed = true
	var first error
	for _, s := range p.segs {
		if err := s.log.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Delete closes the partition and removes its directory.
func (p *Partition) Delete() error {
	cerr := p.Close()
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("storage: delete %s: %w", p.dir, err)
	}
	return cerr
}

func nowMs() int64 { return time.Now().UnixMilli() }
