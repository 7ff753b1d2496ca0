// Package inputbatch encodes a whole input batch of the ABI (header and
// records) into one new slice, as tests and conformance suites hand it to
// an operator. Package abi has the pieces (PutBatchHeader, AppendRecord)
// but no whole-batch encoder, since the host encodes in place in guest
// memory; this is the one copy of it that conformance/suites and
// internal/sdkcheck share.
package inputbatch

import "github.com/sluice-io/sluice/abi"

// Encode encodes recs as one input batch of partition.
func Encode(partition int32, recs []abi.Record) []byte {
	b := make([]byte, abi.BatchHeaderSize)
	abi.PutBatchHeader(b, abi.BatchHeader{Count: uint32(len(recs)), Partition: partition})
	for i := range recs {
		b = abi.AppendRecord(b, &recs[i])
	}
	return b
}
