package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/group"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Close.
var ErrServerClosed = errors.New("kafka: server closed")

// Config configures a Server. The zero value works.
type Config struct {
	// AdvertisedHost and AdvertisedPort are the address Metadata gives
	// clients for this node. Empty host or zero port: the local address of
	// the connection the request came in on, which the client evidently can
	// reach (right for a single node listening on 0.0.0.0 without NAT).
	AdvertisedHost string
	AdvertisedPort int32
	// ClusterID is reported in Metadata; default: the broker's persisted id.
	ClusterID string
	// MaxRequestSize bounds one request frame, as Kafka's
	// socket.request.max.bytes; default 100 MiB. A larger frame closes the
	// connection.
	MaxRequestSize int32
	// IdleTimeout closes a connection that sends nothing for this long, as
	// Kafka's connections.max.idle.ms; default 10 minutes.
	IdleTimeout time.Duration
	// Logger receives connection and protocol errors; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil registers nothing (the
	// metrics are still kept, e.g. for tests that gather them directly).
	Registerer prometheus.Registerer
	// Groups is the consumer-group coordinator. Nil: the server creates
	// one from GroupOptions (which creates the offsets topic if missing)
	// and closes it on Close; a coordinator passed in belongs to the
	// caller.
	Groups       *group.Coordinator
	GroupOptions group.Options
	// Cluster makes the server one node of a replicated cluster; nil is a
	// single node (see Cluster).
	Cluster Cluster
}

const (
	defaultMaxRequestSize = 100 << 20
	defaultIdleTimeout    = 10 * time.Minute
)

// Server serves the Kafka protocol for one broker. Its methods are safe for
// concurrent use.
type Server struct {
	b       *broker.Broker
	cluster Cluster // nil on a single node
	cfg     Config
	log     *slog.Logger
	m       *metrics
	apis    apiTable
	// groups is the group coordinator; ownGroups says Close closes it.
	groups    *group.Coordinator
	ownGroups bool

	// done is closed by Close; long-polling fetches wait on it.
	done chan struct{}

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // Serve loops and connection goroutines

	// testAwaitHook, if set, runs on a connection's writer before it waits
	// for a request's storage work; tests use it to hold answers back.
	testAwaitHook atomic.Pointer[func()]
}

// NewServer returns a server for b that is ready to Serve. It fails only if
// the metrics cannot be registered (for example twice on one Registerer).
func NewServer(b *broker.Broker, cfg Config) (*Server, error) {
	if b == nil {
		return nil, errors.New("kafka: nil broker")
	}
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = defaultMaxRequestSize
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = b.ClusterID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		b:         b,
		cluster:   cfg.Cluster,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "kafka"),
		apis:      newAPITable(),
		done:      make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	s.groups = cfg.Groups
	if s.groups == nil {
		opts := cfg.GroupOptions
		if cfg.Cluster != nil {
			// The coordinator of a group is the leader of its partition
			// of the replicated offsets topic.
			opts.Replicator = offsetsReplicator{cfg.Cluster}
		}
		g, err := group.New(b, opts)
		if err != nil {
			return nil, fmt.Errorf("kafka: group coordinator: %w", err)
		}
		s.groups, s.ownGroups = g, true
	}
	m, err := newMetrics(b, cfg.Registerer, s.groups.Collector())
	if err != nil {
		if s.ownGroups {
			s.groups.Close()
		}
		return nil, fmt.Errorf("kafka: metrics: %w", err)
	}
	s.m = m
	return s, nil
}

// ListenAndServe listens on the TCP address addr and serves it until Close.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Close, then returns ErrServerClosed.
// ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	s.log.Info("kafka listener started", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait and retry,
				// as net/http does, rather than giving up the listener.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
				continue
			}
			return fmt.Errorf("kafka: accept: %w", err)
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// Addr is the address of one of the listeners being served, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		return ln.Addr()
	}
	return nil
}

// Close stops accepting connections, closes every open connection, wakes
// long-polling fetches and waits until all of the server's goroutines have
// returned. Produce requests already appended still get their fsync
// before their connection closes.
// The broker is not closed; it belongs to the caller.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.m.unregister()
	if s.ownGroups {
		s.groups.Close()
	}
	return nil
}

func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
