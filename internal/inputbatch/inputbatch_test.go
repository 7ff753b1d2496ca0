package inputbatch

import (
	"bytes"
	"testing"

	"github.com/sluice-io/sluice/abi"
)

func TestEncodeRoundTrip(t *testing.T) {
	recs := []abi.Record{
		{Offset: 1, Timestamp: 10, Key: []byte("k"), Value: []byte("v")},
		{Offset: 2, Timestamp: 20, Value: []byte{}, Headers: []abi.Header{{Key: []byte("h"), Value: []byte("x")}}},
	}
	rr, err := abi.NewRecordReader(Encode(7, recs))
	if err != nil {
		t.Fatal(err)
	}
	if h := rr.Header(); h.Count != 2 || h.Partition != 7 {
		t.Fatalf("header %+v", h)
	}
	var got abi.Record
	for i := range recs {
		if !rr.Next(&got) {
			t.Fatalf("record %d: %v", i, rr.Err())
		}
		if got.Offset != recs[i].Offset || !bytes.Equal(got.Value, recs[i].Value) {
			t.Fatalf("record %d: %+v", i, got)
		}
	}
	if rr.Next(&got) || rr.Err() != nil {
		t.Fatalf("trailing record or error: %v", rr.Err())
	}
}
