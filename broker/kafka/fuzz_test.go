package kafka

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
)

// FuzzRequestFrame feeds arbitrary bytes to the frame reader and request
// decoder, answers whatever decodes with the real handlers on a real broker
// (or the unsupported-API path), and checks that the answer encodes and
// decodes again. Nothing may panic. Fetches do not wait, group joins and
// syncs do not wait for rebalances, and topic creation is validate-only, to
// keep each input fast.
func FuzzRequestFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 0, 18, 0, 3, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	// One real broker for all inputs, so that read-only handlers run on
	// decoded garbage too.
	b, err := broker.Open(broker.Config{DataDir: f.TempDir(), NodeID: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer b.Close()
	if _, err := b.CreateTopic("t", 2, nil); err != nil {
		f.Fatal(err)
	}
	s, err := NewServer(b, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	client, server := net.Pipe()
	defer client.Close()
	c := newConn(s, server)
	// Group joins and syncs answer at once with whatever the coordinator
	// knows, instead of waiting for a rebalance that no input completes.
	noWait := make(chan struct{})
	close(noWait)

	f.Fuzz(func(t *testing.T, data []byte) {
		bp, err := readFrame(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		defer putBuf(bp)
		req, err := decodeRequest(*bp, &s.apis)
		if err != nil {
			return
		}
		var resp kmsg.Response
		switch api := s.apis.lookup(req.key); {
		case req.body == nil:
			resp = apiVersionsFallback(&s.apis)
		case api != nil && s.apis.supports(req.key, req.version):
			switch r := req.body.(type) {
			case *kmsg.FetchRequest:
				r.MaxWaitMillis = 0
			case *kmsg.CreateTopicsRequest:
				r.ValidateOnly = true
			}
			resp, err = api.handle(&reqCtx{s: s, c: c, key: req.key, version: req.version, stop: noWait}, req.body)
			if _, ok := b.Topic("t"); !ok {
				b.CreateTopic("t", 2, nil) // deleted by this input; restore for the next
			}
			if errors.Is(err, errCloseOnAcks0) {
				return
			}
			if err != nil {
				t.Fatalf("handler failed: %v", err)
			}
			if resp == nil {
				if r, ok := req.body.(*kmsg.ProduceRequest); ok && r.Acks == 0 {
					return // acks=0 is answered with silence
				}
				t.Fatal("handler returned neither a response nor an error")
			}
		default:
			resp = unsupportedResponse(req.body)
		}
		enc := resp.AppendTo(nil)
		again := kmsg.ResponseForKey(resp.Key())
		again.SetVersion(resp.GetVersion())
		if err := again.ReadFrom(enc); err != nil {
			t.Fatalf("%s v%d response does not decode: %v", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
		}
	})
}
