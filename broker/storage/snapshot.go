package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
)

// A producer snapshot "<offset>.snapshot" holds the producer table as it
// was when the log ended at offset:
//
//	magic uint32 | version uint16 | count uint32
//	count × (id int64 | epoch int16 | n uint8 |
//	         n × (firstSeq int32 | lastSeq int32 | baseOffset int64 | lastOffset int64 | appendTime int64))
//	crc32c uint32 of everything before
//
// Snapshots are written at each roll and on Close; the newest two are kept
// so that a damaged newest one still leaves a fallback.

const (
	snapshotMagic   = 0x534c5053 // "SLPS"
	snapshotVersion = 1
	snapshotsKept   = 2
)

func encodeSnapshot(t producerTable) []byte {
	b := make([]byte, 0, 10+len(t)*(11+producerWindow*32)+4)
	b = binary.BigEndian.AppendUint32(b, snapshotMagic)
	b = binary.BigEndian.AppendUint16(b, snapshotVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(t)))
	for id, s := range t {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(s.epoch))
		b = append(b, byte(s.n))
		for _, e := range s.batches[:s.n] {
			b = binary.BigEndian.AppendUint32(b, uint32(e.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(e.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(e.baseOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(e.lastOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(e.appendTime))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadSnapshot = errors.New("producer snapshot damaged")

func decodeSnapshot(b []byte) (producerTable, error) {
	if len(b) < 14 {
		return nil, fmt.Errorf("%w: %d bytes", errBadSnapshot, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	if binary.BigEndian.Uint32(body) != snapshotMagic || binary.BigEndian.Uint16(body[4:]) != snapshotVersion {
		return nil, fmt.Errorf("%w: unknown magic or version", errBadSnapshot)
	}
	count := int(binary.BigEndian.Uint32(body[6:]))
	body = body[10:]
	t := make(producerTable, min(count, len(body)/11))
	for range count {
		if len(body) < 11 {
			return nil, fmt.Errorf("%w: short producer entry", errBadSnapshot)
		}
		id := int64(binary.BigEndian.Uint64(body))
		s := &producerState{epoch: int16(binary.BigEndian.Uint16(body[8:])), n: int(body[10])}
		body = body[11:]
		if s.n > producerWindow || len(body) < s.n*32 {
			return nil, fmt.Errorf("%w: bad batch count %d", errBadSnapshot, s.n)
		}
		for i := range s.n {
			s.batches[i] = producerBatch{
				firstSeq:   int32(binary.BigEndian.Uint32(body)),
				lastSeq:    int32(binary.BigEndian.Uint32(body[4:])),
				baseOffset: int64(binary.BigEndian.Uint64(body[8:])),
				lastOffset: int64(binary.BigEndian.Uint64(body[16:])),
				appendTime: int64(binary.BigEndian.Uint64(body[24:])),
			}
			body = body[32:]
		}
		t[id] = s
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadSnapshot, len(body))
	}
	return t, nil
}

// writeSnapshot persists the producer table as of offset. Needs mu (or
// exclusive ownership during open and close).
func (p *Partition) writeSnapshot(offset int64) error {
	path := filepath.Join(p.dir, fileName(offset, snapshotSuffix))
	tmp := path + tmpSuffix
	if err := writeFileSync(tmp, encodeSnapshot(p.producers)); err != nil {
		return fmt.Errorf("producer snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("producer snapshot: %w", err)
	}
	p.pruneSnapshots()
	return nil
}

// snapshotOffsets lists the offsets of the snapshot files, newest first.
func (p *Partition) snapshotOffsets() ([]int64, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	var offs []int64
	for _, e := range entries {
		if off, ok := parseBase(e.Name(), snapshotSuffix); ok {
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	slices.Reverse(offs)
	return offs, nil
}

func (p *Partition) pruneSnapshots() {
	offs, err := p.snapshotOffsets()
	if err != nil || len(offs) <= snapshotsKept {
		return
	}
	for _, off := range offs[snapshotsKept:] {
		if err := os.Remove(filepath.Join(p.dir, fileName(off, snapshotSuffix))); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("storage: cannot remove old producer snapshot", "err", err)
		}
	}
}

// loadProducers rebuilds the producer table after recovery: the newest
// readable snapshot at or below the log end, then the batch headers after
// it. Snapshots beyond the log end describe data lost to truncation and
// are deleted.
func (p *Partition) loadProducers() error {
	offs, err := p.snapshotOffsets()
	if err != nil {
		return err
	}
	leo, lso := p.leo.Load(), p.lso.Load()
	p.producers = make(producerTable)
	from := lso
	loaded := false
	for _, off := range offs {
		path := filepath.Join(p.dir, fileName(off, snapshotSuffix))
		if off > leo {
			p.log.Info("storage: removing producer snapshot beyond the log end", "snapshot", path, "log_end", leo)
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		if loaded {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		t, err := decodeSnapshot(b)
		if err != nil {
			p.log.Warn("storage: ignoring producer snapshot", "snapshot", path, "err", err)
			continue
		}
		p.producers, from, loaded = t, max(off, lso), true
	}
	if err := p.replayProducers(from); err != nil {
		return fmt.Errorf("replay producer state from offset %d: %w", from, err)
	}
	p.producers.evictBelow(lso)
	return nil
}

// replayProducers applies the headers of every batch at or after from.
func (p *Partition) replayProducers(from int64) error {
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	for i, seg := range p.segs {
		if i+1 < len(p.segs) && p.segs[i+1].base <= from {
			continue
		}
		size := seg.size.Load()
		pos := int64(0)
		if from > seg.base && from-seg.base <= maxRel {
			if e, ok := seg.index.lookup(seg.rel(from)); ok {
				pos = int64(e.pos)
			}
		}
		for pos < size {
			h, err := hr.at(seg.log, pos, size)
			if err != nil {
				return fmt.Errorf("%s: %w", seg.path(logSuffix), err)
			}
			if h.BaseOffset >= from {
				p.producers.replay(&h)
			}
			pos += int64(h.Size())
		}
	}
	return nil
}
