// Command attribution is the attribution example's operator: a windowed
// stream-stream join with event time. It reads impressions (input 0) and
// clicks (input 1), both keyed by ad id with the impression or click id as
// value, and pairs every impression with every click of the same ad that
// happened 0 to window after it (parameters window, default 10m, and
// lateness, the allowed lateness, default 1m):
//
//   - output 0 (attributed): key = ad id, value = "<impression id> <click
//     id>", timestamp = the click's; emitted once per pair, when the
//     second of the two arrives;
//   - output 1 (unmatched-impressions): key = ad id, value = the
//     impression id, timestamp = the impression's; emitted when an
//     impression that matched no click expires;
//   - output 2 (attribution-late): a record whose timestamp is more than
//     lateness behind the stream time (r.Timestamp < r.StreamTime -
//     lateness), with its key and the value "impression:<id>" or
//     "click:<id>" and its timestamp; it is not joined.
//
// At every record, before anything else, state expires by the record's
// stream time st: impressions with ts + window + lateness < st (reporting
// the unmatched ones) and clicks with ts + lateness < st. An impression
// or click that is not late cannot pair with an expired record, so the
// pairs are those of the non-late records whatever the batches. Records
// with a null key or value carry no ad or id and are ignored.
//
// State: two stores, "impression-buffer" and "click-buffer", each
// holding every buffered record twice: under a time index, 'T' + time
// key(ts) + ad + id (the value is the impression's matched flag, "0" or
// "1"), scanned by time to expire, and under an ad index, 'A' + ad + time
// key(ts) + id, scanned by ad and time range to pair. The ad is written as a 2-byte
// big-endian length and its bytes.
//
// Build with `sluice build examples/attribution/go/attribution`.
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	sluice "github.com/sluice-io/sluice/sdk/go"
)

var (
	impressions = sluice.NewStore("impression-buffer")
	clicks      = sluice.NewStore("click-buffer")

	window, lateness int64 // ms
	// expiredAt is the stream time of the last expiry of this batch:
	// expiring again at the same stream time would find nothing.
	expiredAt int64
	// expiredBelow is, per store (impressions, clicks), the cutoff below
	// which everything is already expired, so that an expiry scan starts
	// there rather than at the oldest key: the deleted entries below it
	// would otherwise be walked over again at every record (until the
	// store compacts them away). It is the value as of the last batch
	// whose writes committed; a batch that fails is retried from that.
	expiredBelow, committedBelow [2]int64

	key, end, val []byte
	marks         [][]byte
	expired       []expiry
)

type expiry struct {
	tkey, akey []byte
	unmatched  bool
}

func init() {
	sluice.OnInit(setup)
	committedBelow = [2]int64{math.MinInt64, math.MinInt64}
	sluice.OnBatchStart(func() {
		expiredAt = math.MinInt64
		expiredBelow = committedBelow
	})
	sluice.OnBatchEnd(func(*sluice.Emitter) error {
		committedBelow = expiredBelow
		return nil
	})
	sluice.Handle(handle)
}

func setup(p sluice.Params) error {
	w, l := p.Duration("window", 10*time.Minute), p.Duration("lateness", time.Minute)
	if w < 0 || l < 0 {
		return fmt.Errorf("attribution: window %v and lateness %v must not be negative", w, l)
	}
	window, lateness = w.Milliseconds(), l.Milliseconds()
	return nil
}

// appendAd appends the ad id with its 2-byte length.
func appendAd(dst, ad []byte) []byte {
	return append(binary.BigEndian.AppendUint16(dst, uint16(len(ad))), ad...)
}

func timeIndex(dst []byte, ts int64, ad, id []byte) []byte {
	return append(appendAd(sluice.AppendTimeKey(append(dst, 'T'), ts), ad), id...)
}

func adIndex(dst []byte, ad []byte, ts int64, id []byte) []byte {
	return append(sluice.AppendTimeKey(appendAd(append(dst, 'A'), ad), ts), id...)
}

// parseTime splits a time index key into its timestamp, ad and id.
func parseTime(k []byte) (ts int64, ad, id []byte, ok bool) {
	if len(k) < 11 || k[0] != 'T' {
		return 0, nil, nil, false
	}
	ts, _ = sluice.DecodeTimeKey(k[1:])
	n := int(binary.BigEndian.Uint16(k[9:]))
	if len(k) < 11+n {
		return 0, nil, nil, false
	}
	return ts, k[11 : 11+n], k[11+n:], true
}

func handle(r *sluice.Record, out *sluice.Emitter) error {
	if r.Key == nil || r.Value == nil {
		return nil
	}
	st := r.StreamTime
	if st >= 0 && st > expiredAt {
		if err := expire(st, out); err != nil {
			return err
		}
		expiredAt = st
	}
	if r.Timestamp < st-lateness {
		kind := "impression:"
		if r.Input == 1 {
			kind = "click:"
		}
		val = append(append(val[:0], kind...), r.Value...)
		out.EmitTo(2, r.Key, val)
		return nil
	}
	if r.Input == 0 {
		return impression(r, out)
	}
	return click(r, out)
}

// expire removes what st has expired, reporting unmatched impressions.
func expire(st int64, out *sluice.Emitter) error {
	for i, c := range []struct {
		s      *sluice.Store
		cutoff int64
	}{{impressions, st - window - lateness}, {clicks, st - lateness}} {
		expired = expired[:0]
		if c.cutoff <= expiredBelow[i] {
			continue
		}
		key = sluice.AppendTimeKey(append(key[:0], 'T'), expiredBelow[i])
		end = sluice.AppendTimeKey(append(end[:0], 'T'), c.cutoff)
		expiredBelow[i] = c.cutoff
		for k, v := range c.s.Scan(key, end) {
			ts, ad, id, ok := parseTime(k)
			if !ok {
				return fmt.Errorf("attribution: store %q: malformed key %q", c.s.Name(), k)
			}
			expired = append(expired, expiry{tkey: append([]byte{}, k...), akey: adIndex(nil, ad, ts, id),
				unmatched: c.s == impressions && string(v) == "0"})
		}
		if err := c.s.Err(); err != nil {
			return err
		}
		for _, e := range expired {
			if e.unmatched {
				ts, ad, id, _ := parseTime(e.tkey)
				out.EmitRecord(sluice.Output{Output: 1, Key: ad, Value: id, Timestamp: time.UnixMilli(ts)})
			}
			if err := c.s.Delete(e.tkey); err != nil {
				return err
			}
			if err := c.s.Delete(e.akey); err != nil {
				return err
			}
		}
	}
	return nil
}

// impression pairs an impression with the buffered clicks of its ad in
// [ts, ts+window] and buffers it.
func impression(r *sluice.Record, out *sluice.Emitter) error {
	prefix := len(appendAd([]byte{'A'}, r.Key))
	key = adIndex(key[:0], r.Key, r.Timestamp, nil)
	end = adIndex(end[:0], r.Key, r.Timestamp+window+1, nil)
	matched := "0"
	for k := range clicks.Scan(key, end) {
		ts, _ := sluice.DecodeTimeKey(k[prefix:])
		val = append(append(append(val[:0], r.Value...), ' '), k[prefix+8:]...)
		out.EmitRecord(sluice.Output{Key: r.Key, Value: val, Timestamp: time.UnixMilli(ts)})
		matched = "1"
	}
	if err := clicks.Err(); err != nil {
		return err
	}
	return buffer(impressions, r, []byte(matched))
}

// click pairs a click with the buffered impressions of its ad in
// [ts-window, ts], marking them matched, and buffers it.
func click(r *sluice.Record, out *sluice.Emitter) error {
	prefix := len(appendAd([]byte{'A'}, r.Key))
	key = adIndex(key[:0], r.Key, r.Timestamp-window, nil)
	end = adIndex(end[:0], r.Key, r.Timestamp+1, nil)
	marks = marks[:0]
	for k := range impressions.Scan(key, end) {
		ts, _ := sluice.DecodeTimeKey(k[prefix:])
		id := k[prefix+8:]
		val = append(append(append(val[:0], id...), ' '), r.Value...)
		out.EmitRecord(sluice.Output{Key: r.Key, Value: val, Timestamp: time.UnixMilli(r.Timestamp)})
		marks = append(marks, timeIndex(nil, ts, r.Key, id))
	}
	if err := impressions.Err(); err != nil {
		return err
	}
	for _, m := range marks {
		if err := impressions.Put(m, []byte("1")); err != nil {
			return err
		}
	}
	return buffer(clicks, r, nil)
}

func buffer(s *sluice.Store, r *sluice.Record, flag []byte) error {
	key = timeIndex(key[:0], r.Timestamp, r.Key, r.Value)
	if err := s.Put(key, flag); err != nil {
		return err
	}
	key = adIndex(key[:0], r.Key, r.Timestamp, r.Value)
	return s.Put(key, nil)
}

func main() {}
