// Command testoperator is an operator built with the Go SDK for the SDK's
// own tests, which compile it to Wasm and run it in a real host. Each input
// value selects a behaviour, so that one module covers the SDK's glue:
//
//	"fail"   the handler returns an error
//	"panic"  the handler panics
//	"count"  counts the record's key in store "counts" and emits the count
//	"reset"  deletes the record's key from "counts" and logs it
//	"fill"   puts 3000 entries f10000..f12999 (value i) into "counts"
//	"dump"   emits every entry of "counts", in key order, to output 1
//	other    emits the value with the "prefix" parameter in front
package main

import (
	"errors"

	sluice "github.com/sluice-io/sluice/sdk/go"
)

var (
	prefix []byte
	counts = sluice.NewTable("counts", sluice.Bytes, sluice.Int64)
	num    []byte
)

func init() {
	sluice.OnInit(func(p sluice.Params) error {
		prefix = []byte(p.String("prefix", ""))
		if p.Bool("refuse", false) {
			return errors.New("refusing to start, as asked")
		}
		return nil
	})
	sluice.Handle(handle)
}

func handle(r *sluice.Record, out *sluice.Emitter) error {
	switch string(r.Value) {
	case "fail":
		return errors.New("asked to fail")
	case "panic":
		panic("asked to panic")
	case "count":
		n, _, err := counts.Get(r.Key)
		if err != nil {
			return err
		}
		n++
		if err := counts.Put(r.Key, n); err != nil {
			return err
		}
		num = sluice.Int64.Append(num[:0], n)
		out.Emit(r.Key, num)
	case "reset":
		sluice.Logf(sluice.LevelInfo, "resetting %q", r.Key)
		return counts.Delete(r.Key)
	case "fill":
		for i := range 3000 {
			num = sluice.Int64.Append(append(num[:0], 'f'), int64(10000+i))
			if err := counts.Put(num, int64(i)); err != nil {
				return err
			}
		}
	case "dump":
		store := counts.Store()
		for k, v := range store.Scan(nil, nil) {
			out.EmitTo(1, k, v)
		}
		return store.Err()
	default:
		out.EmitRecord(sluice.Output{Key: r.Key, Value: append(append([]byte{}, prefix...), r.Value...), Headers: r.Headers})
	}
	return nil
}

func main() {}
