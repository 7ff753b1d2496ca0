package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"

	"github.com/sluice-io/sluice/internal/atomicfile"
)

// The leader-epoch cache (Kafka's leader-epoch-checkpoint, KIP-101) maps
// each leader epoch that wrote to the log to the offset of its first batch.
// A follower that comes back asks the leader for the end of its own latest
// epoch (EndOffsetForEpoch) and truncates what lies beyond, which is how
// diverged tails are found without trusting the high watermark.
//
// The file "leader-epoch-checkpoint" is
//
//	magic uint32 | version uint16 | count uint32 |
//	count × (epoch int32 | startOffset int64) | crc32c uint32
//
// written to a temp file, fsynced, renamed and the directory fsynced, each
// time the cache changes: once per leadership change, a truncation, or
// retention moving the log start, never per append.

const (
	epochCheckpointName    = "leader-epoch-checkpoint"
	epochCheckpointMagic   = 0x534c4543 // "SLEC"
	epochCheckpointVersion = 1
)

// EpochEntry is one leader-epoch cache entry: Epoch's first batch starts at
// StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

var errBadEpochCheckpoint = errors.New("leader epoch checkpoint damaged")

// LatestEpoch is the newest leader epoch in the cache, -1 when it is empty.
func (p *Partition) LatestEpoch() int32 {
	p.epochMu.RLock()
	defer p.epochMu.RUnlock()
	if n := len(p.epochs); n > 0 {
		return p.epochs[n-1].Epoch
	}
	return -1
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: for the largest cached
// epoch at or below epoch it returns that epoch and its end offset, which
// is the start of the next cached epoch, or LogEndOffset for the latest.
// When no cached epoch is at or below epoch (an empty cache, or epoch below
// the first entry, or -1) it returns (-1, -1).
//
// Unlike Kafka, an epoch below the first entry does not answer (epoch,
// first start offset), and an epoch above the latest answers the latest
// epoch and the log end rather than (-1, -1); the callers in broker/cluster
// are written against this contract.
func (p *Partition) EndOffsetForEpoch(epoch int32) (foundEpoch int32, endOffset int64) {
	p.epochMu.RLock()
	defer p.epochMu.RUnlock()
	return endOffsetFor(p.epochs, epoch, p.leo.Load())
}

// endOffsetFor is EndOffsetForEpoch over entries with log end leo.
func endOffsetFor(entries []EpochEntry, epoch int32, leo int64) (int32, int64) {
	// i becomes the first entry with an epoch above the one asked for.
	i, hi := 0, len(entries)
	for i < hi {
		m := int(uint(i+hi) >> 1)
		if entries[m].Epoch <= epoch {
			i = m + 1
		} else {
			hi = m
		}
	}
	if epoch < 0 || i == 0 {
		return -1, -1
	}
	if i == len(entries) {
		return entries[i-1].Epoch, leo
	}
	return entries[i-1].Epoch, entries[i].StartOffset
}

// EpochEntries returns a copy of the leader-epoch cache, oldest first, for
// tests and debugging output.
func (p *Partition) EpochEntries() []EpochEntry {
	p.epochMu.RLock()
	defer p.epochMu.RUnlock()
	return slices.Clone(p.epochs)
}

// epochsWith returns entries with (epoch, start) assigned, and whether that
// changed anything. Only a newer epoch is added (negative epochs mean
// "unknown" and are ignored); entries starting at or after start are
// replaced, which can only be leftovers of a write that failed after its
// epoch was assigned. cur is never modified: the cache is copy-on-write.
func epochsWith(cur []EpochEntry, epoch int32, start int64) ([]EpochEntry, bool) {
	n := len(cur)
	if epoch < 0 || (n > 0 && epoch <= cur[n-1].Epoch) {
		return cur, false
	}
	for n > 0 && cur[n-1].StartOffset >= start {
		n--
	}
	next := make([]EpochEntry, n, n+1)
	copy(next, cur)
	return append(next, EpochEntry{epoch, start}), true
}

// epochsBelow drops the entries that start at or after end (Kafka's
// truncateFromEnd), after the log was cut at end.
func epochsBelow(cur []EpochEntry, end int64) ([]EpochEntry, bool) {
	n := len(cur)
	for n > 0 && cur[n-1].StartOffset >= end {
		n--
	}
	if n == len(cur) {
		return cur, false
	}
	return slices.Clone(cur[:n]), true
}

// epochsFrom drops the entries wholly below the log start lso, keeping the
// last one that starts at or before it, moved up to lso (Kafka's
// truncateFromStart): its epoch still owns the offsets from lso on.
func epochsFrom(cur []EpochEntry, lso int64) ([]EpochEntry, bool) {
	k := -1
	for i, e := range cur {
		if e.StartOffset > lso {
			break
		}
		k = i
	}
	if k < 0 || (k == 0 && cur[0].StartOffset == lso) {
		return cur, false
	}
	next := make([]EpochEntry, 0, len(cur)-k)
	next = append(next, EpochEntry{cur[k].Epoch, lso})
	return append(next, cur[k+1:]...), true
}

// setEpochs persists entries and makes them the cache. On error the cache
// is unchanged. Needs mu (or exclusive ownership during open).
func (p *Partition) setEpochs(entries []EpochEntry) error {
	if err := p.writeEpochCheckpoint(entries); err != nil {
		return err
	}
	p.epochMu.Lock()
	p.epochs = entries
	p.epochMu.Unlock()
	return nil
}

// writeEpochCheckpoint replaces the checkpoint file atomically. Its
// temporary name ends in tmpSuffix, which recovery removes if left over.
func (p *Partition) writeEpochCheckpoint(entries []EpochEntry) error {
	if err := atomicfile.Write(filepath.Join(p.dir, epochCheckpointName), encodeEpochs(entries)); err != nil {
		return fmt.Errorf("storage: leader epoch checkpoint: %w", err)
	}
	return nil
}

func encodeEpochs(entries []EpochEntry) []byte {
	b := make([]byte, 0, 10+len(entries)*12+4)
	b = binary.BigEndian.AppendUint32(b, epochCheckpointMagic)
	b = binary.BigEndian.AppendUint16(b, epochCheckpointVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, uint32(e.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.StartOffset))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeEpochs(b []byte) ([]EpochEntry, error) {
	if len(b) < 14 {
		return nil, fmt.Errorf("%w: %d bytes", errBadEpochCheckpoint, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadEpochCheckpoint)
	}
	if binary.BigEndian.Uint32(body) != epochCheckpointMagic || binary.BigEndian.Uint16(body[4:]) != epochCheckpointVersion {
		return nil, fmt.Errorf("%w: unknown magic or version", errBadEpochCheckpoint)
	}
	count := int(binary.BigEndian.Uint32(body[6:]))
	body = body[10:]
	if len(body) != count*12 {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", errBadEpochCheckpoint, count, len(body))
	}
	entries := make([]EpochEntry, count)
	for i := range entries {
		e := EpochEntry{int32(binary.BigEndian.Uint32(body)), int64(binary.BigEndian.Uint64(body[4:]))}
		if e.Epoch < 0 || e.StartOffset < 0 || (i > 0 && (e.Epoch <= entries[i-1].Epoch || e.StartOffset <= entries[i-1].StartOffset)) {
			return nil, fmt.Errorf("%w: entry %d (%d@%d) not increasing", errBadEpochCheckpoint, i, e.Epoch, e.StartOffset)
		}
		entries[i] = e
		body = body[12:]
	}
	return entries, nil
}

// loadEpochs loads the leader-epoch cache during open, after the log and
// its bounds are recovered. A missing or damaged checkpoint is rebuilt
// from the batch headers of the whole log (headers only, no records).
// Entries past the recovered log end (their batches were lost) and below
// the log start are trimmed; the file is rewritten if anything changed.
func (p *Partition) loadEpochs() error {
	path := filepath.Join(p.dir, epochCheckpointName)
	b, err := os.ReadFile(path)
	var entries []EpochEntry
	if err == nil {
		entries, err = decodeEpochs(b)
	}
	write := false
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errBadEpochCheckpoint) {
			return err
		}
		if errors.Is(err, errBadEpochCheckpoint) {
			p.log.Warn("storage: rebuilding leader epoch cache from the log", "file", path, "err", err)
		}
		if entries, err = p.scanEpochs(); err != nil {
			return fmt.Errorf("rebuild leader epoch cache: %w", err)
		}
		// A fresh empty log needs no file; anything else is saved so the
		// next open does not walk the log again.
		write = len(entries) > 0 || len(b) > 0
	}
	var changed bool
	if entries, changed = epochsBelow(entries, p.leo.Load()); changed {
		write = true
	}
	if entries, changed = epochsFrom(entries, p.lso.Load()); changed {
		write = true
	}
	if write {
		return p.setEpochs(entries)
	}
	p.epochs = entries
	return nil
}

// scanEpochs builds the cache from the partition leader epochs in the
// batch headers of every segment.
func (p *Partition) scanEpochs() ([]EpochEntry, error) {
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	var entries []EpochEntry
	for _, seg := range p.segs {
		size := seg.size.Load()
		for pos := int64(0); pos < size; {
			h, err := hr.at(seg.log, pos, size)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", seg.path(logSuffix), err)
			}
			entries, _ = epochsWith(entries, h.LeaderEpoch, h.BaseOffset)
			pos += int64(h.Size())
		}
	}
	return entries, nil
}
