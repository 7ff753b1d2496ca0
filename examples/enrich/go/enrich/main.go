// Command enrich is the enrich example's operator: a stream-table join. It
// reads clicks keyed by user id (input 0) and looks each click's user up
// in the read-only table "profiles" (the compacted topic profiles, which
// the host keeps per partition and updates between calls, in timestamp
// order with the clicks). For each click it emits to output 0, with the
// click's key and timestamp, the value
//
//	{"click":<the click's value>,"profile":<the user's profile, or null>}
//
// with both values copied byte for byte (a null click value is written
// null). A click with a null key has no user: its profile is null.
//
// Build with `sluice build examples/enrich/go/enrich`.
package main

import (
	sluice "github.com/sluice-io/sluice/sdk/go"
)

// profiles is the job's table (tables: in the job file): read-only, and
// changed by the host between calls, so nothing read from it is kept.
var profiles = sluice.NewTableStore("profiles")

var buf []byte

func init() {
	sluice.Handle(enrich)
}

func enrich(r *sluice.Record, out *sluice.Emitter) error {
	var profile []byte
	if r.Key != nil {
		v, found, err := profiles.Get(r.Key)
		if err != nil {
			return err
		}
		if found {
			profile = v
		}
	}
	buf = append(buf[:0], `{"click":`...)
	buf = appendJSON(buf, r.Value)
	buf = append(buf, `,"profile":`...)
	buf = appendJSON(buf, profile)
	buf = append(buf, '}')
	out.Emit(r.Key, buf)
	return nil
}

// appendJSON appends v as it is, or null for a nil v.
func appendJSON(dst, v []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	return append(dst, v...)
}

func main() {}
