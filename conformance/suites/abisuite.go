package suites

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/inputbatch"
	"github.com/sluice-io/sluice/plugins"
)

func abiCases() []Case {
	type abiCase struct {
		name, doc string
		batches   func() [][]byte
	}
	cases := []Case{
		{Suite: SuiteABI, Name: "validate", needsModule: true,
			Doc: "The runtime accepts the module: it imports sluice_v1.check_abi_version_1, only ABI v1 and WASI functions with their signatures, " +
				"exports memory, sluice_alloc, sluice_init and sluice_process, and is a reactor (no _start). " +
				"A module built for another ABI version fails here with the runtime's validation message.",
			run: func(ctx context.Context, e *env) error {
				_, err := e.module(ctx, e.rt)
				return err
			}},
		{Suite: SuiteABI, Name: "instantiate", needsModule: true,
			Doc: "The module instantiates and its sluice_init succeeds with empty parameters (or --params), opening any stores it likes.",
			run: func(ctx context.Context, e *env) error {
				s, err := startGeneric(ctx, e)
				if err != nil {
					return err
				}
				s.close()
				return nil
			}},
	}
	for _, c := range []abiCase{
		{"golden-input", "The input_batch.hex vector of conformance/abi (null key; empty key, value and header value; null value and header value; " +
			"timestamp -1; two inputs) is processed without a fault.",
			func() [][]byte { return [][]byte{goldenInputBatch()} }},
		{"empty-batch", "The empty_batch.hex vector (no records) is processed without a fault or a failed record.",
			func() [][]byte { return [][]byte{goldenEmptyBatch(), goldenEmptyBatch()} }},
		{"large-values", "A batch holding a 60 KiB key, a 1 MiB value (a 256 KiB word among short ones) and a 100 KiB header is processed without a fault.",
			func() [][]byte { return [][]byte{inputbatch.Encode(1, largeRecords())} }},
		{"many-batches", "Sixty batches of 0 to 400 generated sentences, one of them over 300 KiB (the host then grows the input region), are processed without a fault.",
			func() [][]byte { return generatedBatches(60, 400, 7) }},
	} {
		cases = append(cases, Case{Suite: SuiteABI, Name: c.name, needsModule: true,
			Doc: c.doc + " Every emit parses as an output batch naming a declared output (1 output, 4 partitions) and every state call uses a handle from store_open.",
			run: func(ctx context.Context, e *env) error { return processGeneric(ctx, e, c.batches()) }})
	}
	return cases
}

// startGeneric instantiates the user's module for the abi suite: any store
// name is accepted.
func startGeneric(ctx context.Context, e *env) (*session, error) {
	s, err := start(ctx, e, e.rt, hostConfig{anyStore: true},
		plugins.InstanceConfig{Params: e.cfg.Params})
	var ce compileError
	if errors.As(err, &ce) {
		return nil, skipf("the module does not compile on %s (see abi/validate)", e.rt.Name())
	}
	return s, err
}

// processGeneric runs batches through a fresh instance and fails on a
// fault or on any misuse of the ABI the host saw.
func processGeneric(ctx context.Context, e *env, batches [][]byte) error {
	s, err := startGeneric(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	for i, b := range batches {
		r := s.process(ctx, b)
		var re *plugins.RecordError
		switch {
		case r.err == nil:
		case errors.As(r.err, &re):
			// An operator may fail a record; the runtime has checked the
			// index. Nothing more to hold against the module.
			if count(b) == 0 {
				return fmt.Errorf("batch %d has no records but the module failed record %d: %s", i, re.Index, re.Message)
			}
		default:
			return fmt.Errorf("batch %d (%d records, %d bytes): %v", i, count(b), len(b), r.err)
		}
		if len(s.host.problems) > 0 {
			return fmt.Errorf("batch %d: %s", i, strings.Join(s.host.problems, "; "))
		}
	}
	return nil
}

func count(batch []byte) int {
	h, err := abi.ReadBatchHeader(batch)
	if err != nil {
		return 0
	}
	return int(h.Count)
}

func largeRecords() []abi.Record {
	var text strings.Builder
	text.WriteString(strings.Repeat("w", 256<<10))
	for text.Len() < 1<<20 {
		text.WriteString(" the quick\tbrown fox")
	}
	return []abi.Record{
		{Offset: 1, Timestamp: 1, Key: []byte(strings.Repeat("k", 60<<10)), Value: []byte("a b c")},
		{Offset: 2, Timestamp: 2, Value: []byte(text.String())},
		{Offset: 3, Timestamp: 3, Key: []byte("h"), Value: []byte("with a header"),
			Headers: []abi.Header{{Key: []byte("big"), Value: []byte(strings.Repeat("h", 100<<10))}}},
	}
}
