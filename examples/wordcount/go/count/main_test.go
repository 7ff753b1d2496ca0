package main

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func word(w string) sluice.Record { return sluice.Record{Key: []byte(w), Value: []byte(w)} }

func TestCountEmitsEachWordOncePerBatch(t *testing.T) {
	host, err := sdktest.Start(sdktest.Config{Stores: []string{"counts"}})
	if err != nil {
		t.Fatal(err)
	}
	host.SetState("counts", "old", "41")
	outs, err := host.Process(word("b"), word("a"), word("b"), sluice.Record{Value: []byte("no key")}, word("old"), word("b"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%s=%s", o.Key, o.Value))
	}
	// One output per word of the batch, in order of first appearance.
	if want := []string{"b=3", "a=1", "old=42"}; !slices.Equal(got, want) {
		t.Errorf("outputs = %q, want %q", got, want)
	}
	st := host.State("counts")
	if want := map[string]string{"a": "1", "b": "3", "old": "42"}; fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("counts store = %v, want %v", st, want)
	}
}

func TestCountFailsOnACorruptCount(t *testing.T) {
	host, err := sdktest.Start(sdktest.Config{Stores: []string{"counts"}})
	if err != nil {
		t.Fatal(err)
	}
	host.SetState("counts", "bad", "x")
	_, err = host.Process(word("a"), word("bad"))
	var re *sdktest.RecordError
	if !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("err = %v, want record 1 failed", err)
	}
	// The batch's other writes were discarded with it.
	if _, ok := host.State("counts")["a"]; ok {
		t.Error(`"a" was counted in a failed batch`)
	}
}
