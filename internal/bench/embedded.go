package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/kafka"
	"github.com/sluice-io/sluice/broker/storage"
)

// Embedded is an in-process sluice node, so that `sluice bench` needs no
// running server. It is the same broker and Kafka front door that
// `sluice serve` runs, talked to over loopback TCP.
type Embedded struct {
	b      *broker.Broker
	srv    *kafka.Server
	ln     net.Listener
	served chan error
	cancel context.CancelFunc
	ran    chan struct{}
}

// StartEmbedded opens a broker in dir and serves it on a random loopback
// port.
func StartEmbedded(dir string, flush storage.FlushMode, log *slog.Logger) (*Embedded, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	defaults := storage.DefaultConfig()
	defaults.FlushMode = flush
	b, err := broker.Open(broker.Config{
		DataDir:  filepath.Join(dir, "sluice"),
		NodeID:   1,
		Defaults: defaults,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		return nil, err
	}
	srv, err := kafka.NewServer(b, kafka.Config{Logger: log})
	if err != nil {
		ln.Close()
		b.Close()
		return nil, fmt.Errorf("kafka server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Embedded{b: b, srv: srv, ln: ln, served: make(chan error, 1), cancel: cancel, ran: make(chan struct{})}
	go func() { e.served <- srv.Serve(ln) }()
	go func() { defer close(e.ran); b.Run(ctx) }()
	return e, nil
}

// Addr is the address clients connect to.
func (e *Embedded) Addr() string { return e.ln.Addr().String() }

// Close stops serving and closes the broker, flushing its partitions.
func (e *Embedded) Close() error {
	err := e.srv.Close()
	if serr := <-e.served; serr != nil && !errors.Is(serr, kafka.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		err = errors.Join(err, serr)
	}
	e.cancel()
	<-e.ran
	return errors.Join(err, e.b.Close())
}
