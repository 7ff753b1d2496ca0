package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-io/sluice/internal/jsretry"
)

// Config describes one node. The zero values of the optional fields are
// working defaults.
type Config struct {
	NodeID  int32  // >= 0
	DataDir string // the node's data dir; NATS state goes to DataDir/nats (stable across restarts)
	// ClusterName is a component of every subject prefix; default "sluice".
	ClusterName string
	// ClusterListen is host:port for NATS routes; "" runs a standalone node
	// (single node, buckets at R1, no routes).
	ClusterListen string
	// Peers are the other nodes' route addresses (host:port). The node's own
	// ClusterListen is added, so that every node expects the same cluster
	// size from the start and quorum is a majority of all of them.
	Peers []string
	// Self is advertised to peers; ID is filled from NodeID and Incarnation
	// is drawn at every Start.
	Self NodeInfo
	// SessionTimeout is how long after its last heartbeat a node counts as
	// dead (default 3s, minimum 1s).
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// NATSLog routes the embedded server's logs to Logger at debug level.
	NATSLog bool
}

const (
	defaultClusterName    = "sluice"
	defaultSessionTimeout = 3 * time.Second
	minSessionTimeout     = time.Second

	metaBucket = "sluice_meta"
	liveBucket = "sluice_live"
)

func (c Config) withDefaults() (Config, error) {
	if c.NodeID < 0 {
		return c, fmt.Errorf("cluster: node id %d: must be >= 0", c.NodeID)
	}
	if c.DataDir == "" {
		return c, errors.New("cluster: DataDir is required")
	}
	if c.ClusterName == "" {
		c.ClusterName = defaultClusterName
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = defaultSessionTimeout
	}
	if c.SessionTimeout < minSessionTimeout {
		return c, fmt.Errorf("cluster: session timeout %v: minimum is %v", c.SessionTimeout, minSessionTimeout)
	}
	if c.ClusterListen != "" && len(c.Peers) == 0 {
		// A meta group of one listed route expects 2 members and never
		// reaches quorum; a single node must run standalone.
		return c, errors.New("cluster: ClusterListen needs Peers (run a single node standalone)")
	}
	if c.ClusterListen == "" && len(c.Peers) > 0 {
		return c, errors.New("cluster: Peers need ClusterListen")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Self.ID = c.NodeID
	c.Peers = append([]string(nil), c.Peers...)
	return c, nil
}

func (c Config) clustered() bool { return c.ClusterListen != "" }

func (c Config) replicas() int {
	if c.clustered() {
		return 3
	}
	return 1
}

// Node is one member of the cluster: an embedded NATS server with
// JetStream, the metadata cache, liveness and (when elected) the controller.
type Node struct {
	cfg      Config
	log      *slog.Logger
	srv      *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	metaKV   jetstream.KeyValue
	liveKV   jetstream.KeyValue
	meta     *MetaStore
	live     *liveness
	ctrl     *controller
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopped  atomic.Bool
	stopOnce sync.Once
}

// Start starts the node and returns when JetStream is ready, both buckets
// exist, the node's first heartbeat is written and the MetaStore holds the
// bucket's contents. Transient JetStream errors (no meta leader yet, no
// responders, 503) are retried with backoff until ctx ends.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Self.Incarnation = randomIncarnation()
	setRaftTiming()
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID)}
	if err := n.start(ctx); err != nil {
		n.shutdown(false)
		return nil, err
	}
	return n, nil
}

func randomIncarnation() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}

func (n *Node) serverOptions() (*server.Options, error) {
	opts := &server.Options{
		ServerName: "sluice-" + strconv.Itoa(int(n.cfg.NodeID)),
		// The client port is only for tools and benchmarks; sluice itself
		// uses in-process connections.
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  filepath.Join(n.cfg.DataDir, "nats"),
		// Metadata decides leader epochs; losing an acknowledged write to a
		// power cut could elect two leaders for one epoch.
		SyncAlways:             true,
		JetStreamMaxStore:      1 << 30,
		JetStreamMaxMemory:     64 << 20,
		MaxPayload:             8 << 20,
		NoLog:                  !n.cfg.NATSLog,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	if !n.cfg.clustered() {
		return opts, nil
	}
	host, portStr, err := net.SplitHostPort(n.cfg.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("cluster: ClusterListen %q: %w", n.cfg.ClusterListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 {
		return nil, fmt.Errorf("cluster: ClusterListen %q: needs a fixed port", n.cfg.ClusterListen)
	}
	opts.Cluster = server.ClusterOpts{Name: n.cfg.ClusterName, Host: host, Port: port}
	// Listing ourselves too makes the meta group expect all nodes from the
	// start (quorum = majority of all); the route to self is dropped.
	for _, addr := range append([]string{n.cfg.ClusterListen}, n.cfg.Peers...) {
		opts.Routes = append(opts.Routes, server.RoutesFromStr("nats://"+addr)...)
	}
	return opts, nil
}

func (n *Node) start(ctx context.Context) error {
	opts, err := n.serverOptions()
	if err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("cluster: nats server: %w", err)
	}
	n.srv = srv
	if n.cfg.NATSLog {
		srv.SetLoggerV2(&natsLogger{log: n.log.With("nats", true)}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("cluster: nats server not ready after 10s (route port in use?)")
	}
	if err := n.waitJetStream(ctx); err != nil {
		return err
	}
	if n.nc, err = n.NewConn(); err != nil {
		return err
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	if err := n.createBuckets(ctx); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.meta = newMetaStore(n.metaKV, n.log)
	metaStream, liveStream, err := n.bucketStreams(ctx)
	if err != nil {
		return err
	}
	if err := n.meta.start(ctx, runCtx, &n.wg, metaStream, n.cfg.SessionTimeout/6); err != nil {
		return err
	}
	// The watch may be served by a replica that is still catching up (this
	// node's own, after a restart); the stream leader knows the last revision.
	if err := n.waitMetaCurrent(ctx, metaStream); err != nil {
		return err
	}
	if err := n.meta.ensureClusterID(ctx); err != nil {
		return err
	}
	n.live = newLiveness(n.liveKV, n.cfg.Self, n.cfg.SessionTimeout, n.log)
	if err := n.live.start(ctx, runCtx, &n.wg, liveStream); err != nil {
		return err
	}
	n.ctrl = newController(n.meta, n.live, n.log)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.ctrl.run(runCtx)
	}()
	if n.cfg.clustered() {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.watchRoutes(runCtx)
		}()
	}
	return nil
}

// routePollInterval is how often a node counts its routes. Counting is a
// lock and a map length in the server, so polling often is cheap, and it
// is the fastest sign of a dead peer: the kernel closes a killed process's
// connections at once.
const routePollInterval = 50 * time.Millisecond

// watchRoutes reopens the bucket watches whenever a route to a peer goes
// away. A watch's consumer may live on the peer that died, and nats.go
// notices that only after 10 s; see watch.go.
func (n *Node) watchRoutes(ctx context.Context) {
	tick := time.NewTicker(routePollInterval)
	defer tick.Stop()
	last := n.srv.NumRoutes()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		routes := n.srv.NumRoutes()
		if routes < last {
			n.log.Info("lost a route to a peer; reopening metadata watches", "routes", routes, "before", last)
			n.meta.watch.reopenSoon()
			n.live.watch.reopenSoon()
		}
		last = routes
	}
}

// waitJetStream waits for the meta group to have a leader: before that the
// JetStream API answers 503 or not at all.
func (n *Node) waitJetStream(ctx context.Context) error {
	return jsretry.PollUntil(ctx, func() bool {
		if !n.srv.JetStreamEnabled() || !n.srv.JetStreamIsCurrent() {
			return false
		}
		if !n.cfg.clustered() {
			return true
		}
		info, err := n.srv.Jsz(nil)
		return err == nil && info.Meta != nil && info.Meta.Leader != ""
	})
}

func (n *Node) createBuckets(ctx context.Context) error {
	metaCfg := jetstream.KeyValueConfig{
		Bucket:      metaBucket,
		Description: "sluice cluster metadata: topics, partition leaders, producer ids",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    n.cfg.replicas(),
	}
	liveCfg := jetstream.KeyValueConfig{
		Bucket:         liveBucket,
		Description:    "sluice liveness heartbeats and the controller lease",
		History:        1,
		TTL:            n.cfg.SessionTimeout,
		LimitMarkerTTL: time.Second,
		Storage:        jetstream.FileStorage,
		Replicas:       n.cfg.replicas(),
	}
	var err error
	if err = jsretry.Do(ctx, func(ctx context.Context) error {
		n.metaKV, err = n.js.CreateOrUpdateKeyValue(ctx, metaCfg)
		return err
	}); err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", metaBucket, err)
	}
	if err = jsretry.Do(ctx, func(ctx context.Context) error {
		n.liveKV, err = n.js.CreateOrUpdateKeyValue(ctx, liveCfg)
		return err
	}); err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", liveBucket, err)
	}
	return nil
}

// bucketStreams returns the streams behind the buckets; the watches ask
// them for their last sequence to detect a stalled watch.
func (n *Node) bucketStreams(ctx context.Context) (meta, live jetstream.Stream, err error) {
	for _, b := range []struct {
		name string
		dst  *jetstream.Stream
	}{{metaBucket, &meta}, {liveBucket, &live}} {
		err = jsretry.Do(ctx, func(ctx context.Context) (err error) {
			*b.dst, err = n.js.Stream(ctx, "KV_"+b.name)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: stream of %s: %w", b.name, err)
		}
	}
	return meta, live, nil
}

func (n *Node) waitMetaCurrent(ctx context.Context, stream jetstream.Stream) error {
	var last uint64
	err := jsretry.Do(ctx, func(ctx context.Context) error {
		info, err := stream.Info(ctx)
		if err == nil {
			last = info.State.LastSeq
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: %s state: %w", metaBucket, err)
	}
	if err := n.meta.WaitRevision(ctx, last); err != nil {
		return fmt.Errorf("cluster: catching up with %s: %w", metaBucket, err)
	}
	return nil
}

// ID is the node id.
func (n *Node) ID() int32 { return n.cfg.NodeID }

// Config returns the configuration the node runs with (defaults filled in),
// which restarts the same node when passed to Start again.
func (n *Node) Config() Config { return n.cfg }

// Self is what this node advertises, with this run's incarnation.
func (n *Node) Self() NodeInfo { return n.cfg.Self }

// Conn is the node's in-process connection. It is shared with the
// metadata watches, so heavy traffic should use NewConn.
func (n *Node) Conn() *nats.Conn { return n.nc }

// NewConn opens another in-process connection (head-of-line isolation);
// the caller closes it.
func (n *Node) NewConn() (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(n.srv),
		nats.Name(fmt.Sprintf("sluice-%d", n.cfg.NodeID)),
		// An in-process connection only breaks when the server stops.
		nats.NoReconnect())
	if err != nil {
		return nil, fmt.Errorf("cluster: in-process connection: %w", err)
	}
	return nc, nil
}

// ClientURL is the embedded server's loopback client address, for tools and
// benchmarks that want TCP rather than in-process connections.
func (n *Node) ClientURL() string { return n.srv.ClientURL() }

// Server is the embedded NATS server (tests and diagnostics).
func (n *Node) Server() *server.Server { return n.srv }

// ClusterName is the subject prefix component shared by all nodes.
func (n *Node) ClusterName() string { return n.cfg.ClusterName }

// Meta is the metadata cache.
func (n *Node) Meta() *MetaStore { return n.meta }

// LiveNodes lists the live nodes sorted by ID, this node included.
func (n *Node) LiveNodes() []NodeInfo { return n.live.liveNodes() }

// IsLive tells whether node id heartbeats.
func (n *Node) IsLive(id int32) bool { return n.live.isLive(id) }

// ControllerID is the node holding the controller lease, -1 when unknown.
func (n *Node) ControllerID() int32 { return n.live.controllerID() }

// IsController tells whether this node holds the controller lease.
func (n *Node) IsController() bool { return n.ctrl.isController() }

// ControllerEpoch is the revision at which the current controller took the
// lease (0 when unknown); it grows with every new controller.
func (n *Node) ControllerEpoch() uint64 { return n.live.controllerEpoch() }

// Close stops the controller and heartbeat, deletes this node's liveness
// key and the controller lease if held (so peers react at once), and shuts
// NATS down gracefully, which hands its Raft leaderships to peers.
func (n *Node) Close() error {
	n.shutdown(true)
	return nil
}

// Kill stops the node abruptly for tests: NATS shuts down without the
// liveness key being deleted, so peers notice only when it expires.
func (n *Node) Kill() { n.shutdown(false) }

func (n *Node) shutdown(graceful bool) {
	n.stopOnce.Do(func() {
		n.stopped.Store(true)
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if graceful && n.live != nil && n.ctrl != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n.ctrl.resign(ctx)
			n.live.leave(ctx)
			cancel()
		}
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
		}
		if n.nc != nil {
			n.nc.Close()
		}
	})
}

// natsLogger sends nats-server logs to slog at debug level: they are useful
// when a cluster misbehaves and noise otherwise.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  {}
