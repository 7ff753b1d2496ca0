package suites

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/inputbatch"
)

// The golden vectors of conformance/abi/testdata, built from the values
// its README gives. They are encoded here with package abi rather than
// read from the .hex files so that the suites work from an installed
// binary; TestGoldenVectorsMatchTestdata checks that they are the same
// bytes.

func goldenInputRecords() []abi.Record {
	return []abi.Record{
		{Offset: 100, Timestamp: 1700000000000, Input: 0, Key: nil, Value: []byte("hello")},
		{Offset: 101, Timestamp: 1700000000001, Input: 1, Key: []byte{}, Value: []byte{},
			Headers: []abi.Header{{Key: []byte("h1"), Value: []byte("v1")}, {Key: []byte("h2"), Value: nil}, {Key: []byte("h3"), Value: []byte{}}}},
		{Offset: 102, Timestamp: -1, Input: 0, Key: []byte("k"), Value: nil},
	}
}

// goldenInputBatch is input_batch.hex: 3 records from partition 2.
func goldenInputBatch() []byte { return inputbatch.Encode(2, goldenInputRecords()) }

// goldenEmptyBatch is empty_batch.hex.
func goldenEmptyBatch() []byte { return inputbatch.Encode(0, nil) }

// goldenOutputBatch is output_batch.hex.
func goldenOutputBatch() []byte {
	outs := []abi.Output{
		{Output: 0, Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: []byte("word"), Value: []byte("1")},
		{Output: 1, Partition: 3, Timestamp: 1700000000123, Key: nil, Value: []byte("x"),
			Headers: []abi.Header{{Key: []byte("trace"), Value: nil}}},
	}
	var b []byte
	for i := range outs {
		b = abi.AppendOutput(b, &outs[i])
	}
	return b
}

// goldenScanState is the store content whose full scan is scan_result.hex.
func goldenScanState() map[string]string {
	return map[string]string{"a": "1", "b": "", "c\x00": "xyz"}
}

// goldenScanResult is scan_result.hex.
func goldenScanResult() []byte {
	var b []byte
	b = abi.AppendScanEntry(b, []byte("a"), []byte("1"))
	b = abi.AppendScanEntry(b, []byte("b"), []byte{})
	b = abi.AppendScanEntry(b, []byte("c\x00"), []byte("xyz"))
	return b
}
