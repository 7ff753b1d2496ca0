package storage

import (
	"fmt"
	"math"

	"github.com/sluice-io/sluice/broker/batch"
)

// Idempotent producers. Every batch with a producer id carries the
// producer's epoch and the sequence number of its first record. For each
// producer we remember the epoch and the last producerWindow batches
// (Kafka's max.in.flight for idempotence is 5), which is enough to answer
// a retry of any batch still in flight with its original offsets and to
// spot a gap.

const producerWindow = 5

type producerBatch struct {
	firstSeq, lastSeq      int32
	baseOffset, lastOffset int64
	appendTime             int64
}

type producerState struct {
	epoch   int16
	n       int // valid entries in batches, oldest first
	batches [producerWindow]producerBatch
}

func (s *producerState) push(b producerBatch) {
	if s.n == producerWindow {
		copy(s.batches[:], s.batches[1:])
		s.n--
	}
	s.batches[s.n] = b
	s.n++
}

func (s *producerState) lastOffset() int64 {
	if s.n == 0 {
		return -1
	}
	return s.batches[s.n-1].lastOffset
}

// addSeq adds delta to a sequence number the way producers do: sequences
// wrap from MaxInt32 to 0.
func addSeq(seq, delta int32) int32 {
	if seq > math.MaxInt32-delta {
		return delta - (math.MaxInt32 - seq) - 1
	}
	return seq + delta
}

// checkSequence decides whether batch h may follow state s (nil for a
// producer we know nothing about). On a duplicate it returns the batch
// appended first.
func checkSequence(s *producerState, h *batch.Header) (*producerBatch, error) {
	if h.BaseSequence < 0 {
		return nil, fmt.Errorf("%w: producer %d sent sequence %d", ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence)
	}
	if s == nil {
		// Unknown producer: its state may have been evicted with old
		// segments, so like Kafka we accept whatever sequence it resumes at.
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < s.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, s.epoch)
	case h.ProducerEpoch > s.epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
	}
	lastSeq := addSeq(h.BaseSequence, h.LastOffsetDelta)
	for i := 0; i < s.n; i++ {
		if b := &s.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == lastSeq {
			return b, ErrDuplicateSequence
		}
	}
	if s.n > 0 {
		if want := addSeq(s.batches[s.n-1].lastSeq, 1); h.BaseSequence != want {
			return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence, want)
		}
	}
	return nil, nil
}

// apply records batch h (already accepted or read back from the log).
func (s *producerState) apply(h *batch.Header, baseOffset int64, appendTime int64) {
	if h.ProducerEpoch != s.epoch {
		s.epoch = h.ProducerEpoch
		s.n = 0
	}
	s.push(producerBatch{
		firstSeq:   h.BaseSequence,
		lastSeq:    addSeq(h.BaseSequence, h.LastOffsetDelta),
		baseOffset: baseOffset,
		lastOffset: baseOffset + int64(h.LastOffsetDelta),
		appendTime: appendTime,
	})
}

// producerTable is the state of every producer that wrote to a partition.
type producerTable map[int64]*producerState

// replay applies a batch read back from the log, without checks: the log
// is the truth.
func (t producerTable) replay(h *batch.Header) {
	if h.ProducerID < 0 || h.IsControl() {
		return
	}
	s := t[h.ProducerID]
	if s == nil {
		s = &producerState{epoch: h.ProducerEpoch}
		t[h.ProducerID] = s
	}
	s.apply(h, h.BaseOffset, h.MaxTimestamp)
}

// evictBelow forgets producers whose last batch is below the log start;
// nothing in the log can be retried against them any more.
func (t producerTable) evictBelow(logStart int64) {
	for id, s := range t {
		if s.lastOffset() < logStart {
			delete(t, id)
		}
	}
}

// stagedProducer is a producer's state as it will be once the batches of
// the current request before this point are appended.
type stagedProducer struct {
	id    int64
	known bool
	state producerState
}

// stage checks h (to be appended at baseOffset) against the committed and
// staged state and stages the update. Needs mu.
func (p *Partition) stage(h *batch.Header, baseOffset, now int64) (*producerBatch, error) {
	var st *stagedProducer
	for i := range p.staged {
		if p.staged[i].id == h.ProducerID {
			st = &p.staged[i]
			break
		}
	}
	if st == nil {
		p.staged = append(p.staged, stagedProducer{id: h.ProducerID})
		st = &p.staged[len(p.staged)-1]
		if s := p.producers[h.ProducerID]; s != nil {
			st.known, st.state = true, *s
		}
	}
	var cur *producerState
	if st.known {
		cur = &st.state
	}
	dup, err := checkSequence(cur, h)
	if err != nil {
		if dup != nil {
			d := *dup
			return &d, err
		}
		return nil, err
	}
	if !st.known {
		st.known, st.state = true, producerState{epoch: h.ProducerEpoch}
	}
	st.state.apply(h, baseOffset, now)
	return nil, nil
}

// commitStaged makes the staged producer updates current. Needs mu.
func (p *Partition) commitStaged() {
	for i := range p.staged {
		st := &p.staged[i]
		if s := p.producers[st.id]; s != nil {
			*s = st.state
		} else {
			s := st.state
			p.producers[st.id] = &s
		}
	}
	p.staged = p.staged[:0]
}
