package sluice_test

import (
	"bytes"
	"fmt"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

// An operator that upper-cases values and keeps a count per key. In a real
// operator the registration is in an init function of package main; here
// it runs under sdktest, which plays the host.
func Example() {
	seen := sluice.NewTable("seen", sluice.Bytes, sluice.Int64)
	var suffix []byte

	sluice.OnInit(func(p sluice.Params) error {
		suffix = []byte(p.String("suffix", "!"))
		return nil
	})
	sluice.Handle(func(r *sluice.Record, out *sluice.Emitter) error {
		n, _, err := seen.Get(r.Key)
		if err != nil {
			return err
		}
		if err := seen.Put(r.Key, n+1); err != nil {
			return err
		}
		out.Emit(r.Key, append(bytes.ToUpper(r.Value), suffix...))
		return nil
	})

	host, err := sdktest.Start(sdktest.Config{
		Params: map[string]any{"suffix": "?"},
		Stores: []string{"seen"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	outs, err := host.Process(
		sluice.Record{Key: []byte("a"), Value: []byte("hello")},
		sluice.Record{Key: []byte("a"), Value: []byte("again")},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range outs {
		fmt.Printf("%s=%s\n", o.Key, o.Value)
	}
	fmt.Println("seen a:", host.State("seen")["a"])
	// Output:
	// a=HELLO?
	// a=AGAIN?
	// seen a: 2
}
