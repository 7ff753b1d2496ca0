package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/kafka"
	"github.com/sluice-io/sluice/broker/replication"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/internal/loopback"
)

// clusterNode is one node of a replicated cluster, wired as `sluice serve
// --cluster-listen` wires it: the broker (replication owns its high
// watermarks), the Kafka listener, the embedded NATS node that joins the
// peers, the replica manager and the Kafka server. serveCluster runs one;
// `sluice bench --cluster N` runs N in one process on loopback.
//
// Starting binds the listener before joining the cluster (peers learn the
// node's address from its liveness record) but serves only when serve is
// called, so that the caller decides when the node is announced as ready.
type clusterNode struct {
	cfg  serveConfig
	log  *slog.Logger
	host string // advertised
	port int32

	b    *broker.Broker
	ln   *trackingListener
	node *cluster.Node
	repl *replication.Manager
	srv  *kafka.Server
	reg  *prometheus.Registry

	cancelRun  context.CancelFunc
	brokerDone chan error
	served     chan struct{} // closed when Serve returns; nil until serve
	serveErr   error         // Serve's error, once served is closed
	stopOnce   sync.Once

	stopServingOnce sync.Once
}

// startClusterNode opens and joins a node; on error everything it opened
// is closed again.
func startClusterNode(ctx context.Context, cfg serveConfig, log *slog.Logger) (_ *clusterNode, err error) {
	n := &clusterNode{cfg: cfg, log: log, reg: newMetricsRegistry()}
	defer func() {
		if err != nil {
			n.stop(false)
		}
	}()
	if n.b, err = broker.Open(cfg.brokerConfig(log, true)); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n.ln = &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	if n.host, n.port, err = advertised(cfg.AdvertisedAddr, ln.Addr()); err != nil {
		return nil, err
	}
	if n.host == "" {
		// Peers and clients need a dialable address for this node.
		return nil, errors.New("cluster mode needs --advertised-addr when --listen is a wildcard address")
	}
	n.node, err = cluster.Start(ctx, cluster.Config{
		NodeID:         cfg.NodeID,
		DataDir:        cfg.DataDir,
		ClusterName:    cfg.ClusterName,
		ClusterListen:  cfg.ClusterListen,
		Peers:          cfg.Peers,
		Self:           cluster.NodeInfo{KafkaHost: n.host, KafkaPort: n.port, Rack: cfg.Rack},
		SessionTimeout: cfg.SessionTimeout,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.repl, err = replication.Start(replication.Config{
		Node:                     n.node,
		Broker:                   n.b,
		ReplicaLagMax:            cfg.ReplicaLagMax,
		DefaultReplicationFactor: cfg.DefaultReplicas,
		AutoCreateTopics:         cfg.AutoCreateTopics,
		DefaultPartitions:        cfg.DefaultPartitions,
		Registerer:               n.reg,
		Logger:                   log,
	})
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	n.srv, err = kafka.NewServer(n.b, kafka.Config{
		AdvertisedHost: n.host,
		AdvertisedPort: n.port,
		ClusterID:      n.node.Meta().ClusterID(),
		Logger:         log,
		Registerer:     n.reg,
		Cluster:        n.repl,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka server: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancelRun, n.brokerDone = cancel, make(chan error, 1)
	go func() { n.brokerDone <- n.b.Run(runCtx) }()
	return n, nil
}

// serve starts answering Kafka requests; the returned channel is closed
// when serving stops (Close, or the listener failing: see serveErr).
func (n *clusterNode) serve() <-chan struct{} {
	n.served = make(chan struct{})
	go func() {
		defer close(n.served)
		n.serveErr = n.srv.Serve(n.ln)
	}()
	return n.served
}

// stopServing closes the Kafka server and its connections after the
// requests in flight finish.
func (n *clusterNode) stopServing() {
	if n.srv == nil {
		return
	}
	n.stopServingOnce.Do(n.closeServer)
}

func (n *clusterNode) closeServer() {
	if err := n.srv.Close(); err != nil {
		n.log.Warn("closing kafka server", "err", err)
	}
	if n.served != nil {
		<-n.served
		if err := n.serveErr; err != nil && !errors.Is(err, net.ErrClosed) && !isServerClosed(err) {
			n.log.Warn("kafka listener stopped", "err", err)
		}
	}
}

// addr is the node's advertised Kafka address.
func (n *clusterNode) addr() string { return net.JoinHostPort(n.host, strconv.Itoa(int(n.port))) }

// close shuts the node down in the reverse order of starting: the Kafka
// server first (in-flight requests finish), then replication, then the
// NATS node (which tells the others it left and hands over its Raft
// leaderships), then the broker, which flushes every partition.
func (n *clusterNode) close() error { return n.stop(true) }

// kill stops the node as abruptly as one process allows, for failover
// measurements: NATS vanishes without a goodbye (peers notice when its
// heartbeat expires), every Kafka connection is cut as the kernel would
// cut a killed process's, and only then do replication (which fails the
// requests still waiting for acknowledgements, on connections already
// gone) and the broker stop. Nothing is answered after the cut.
func (n *clusterNode) kill() { n.stop(false) }

func (n *clusterNode) stop(graceful bool) error {
	var err error
	n.stopOnce.Do(func() {
		if !graceful {
			if n.node != nil {
				n.node.Kill()
			}
			if n.ln != nil {
				n.ln.cut()
			}
			if n.repl != nil {
				n.repl.Close()
			}
		}
		n.stopServing()
		if n.cancelRun != nil {
			n.cancelRun()
			<-n.brokerDone
		}
		if graceful {
			if n.repl != nil {
				n.repl.Close()
			}
			if n.node != nil {
				if cerr := n.node.Close(); cerr != nil {
					n.log.Warn("leaving the cluster", "err", cerr)
				}
			}
		}
		if n.ln != nil {
			n.ln.Close()
		}
		if n.b != nil {
			if cerr := n.b.Close(); cerr != nil {
				n.log.Error("closing broker", "err", cerr)
				err = cerr
			}
		}
	})
	return err
}

// trackingListener remembers the connections it accepted so that kill can
// cut them all at once, before the server would answer on them.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	isCut bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return c, nil
}

// cut closes the listener and every accepted connection.
func (l *trackingListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.isCut = true
	l.Listener.Close()
	for c := range l.conns {
		c.Close()
	}
}

// localCluster is N cluster nodes in this process on loopback ports, with
// their data under one directory.
type localCluster struct {
	nodes []*clusterNode
}

// localClusterConfig is what a local cluster's nodes share.
type localClusterConfig struct {
	nodes          int
	dir            string
	flush          storage.FlushMode
	sessionTimeout time.Duration
	log            *slog.Logger
}

// startLocalCluster starts the nodes concurrently (a clustered node cannot
// finish starting before a quorum is up) and serves them once all are up.
// A start that lost a reserved route port to another process is retried.
func startLocalCluster(ctx context.Context, c localClusterConfig) (*localCluster, error) {
	return loopback.Start(ctx, c.dir, func(dir string) (*localCluster, error) {
		return tryLocalCluster(ctx, c, dir)
	})
}

func tryLocalCluster(ctx context.Context, c localClusterConfig, dir string) (*localCluster, error) {
	ports, err := loopback.FreePorts(c.nodes)
	if err != nil {
		return nil, err
	}
	routes := make([]string, c.nodes)
	for i, p := range ports {
		routes[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	lc := &localCluster{nodes: make([]*clusterNode, c.nodes)}
	errs := make([]error, c.nodes)
	var wg sync.WaitGroup
	for i := range c.nodes {
		cfg := localNodeConfig(c, dir, int32(i), routes)
		wg.Go(func() {
			lc.nodes[i], errs[i] = startClusterNode(ctx, cfg, c.log.With("node", i))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		lc.close()
		return nil, err
	}
	for _, n := range lc.nodes {
		n.serve()
	}
	return lc, nil
}

// localNodeConfig is node id's configuration: `sluice serve` defaults,
// loopback listeners, data in dir/node-<id>.
func localNodeConfig(c localClusterConfig, dir string, id int32, routes []string) serveConfig {
	cfg := serveConfig{
		DataDir:           filepath.Join(dir, "node-"+strconv.Itoa(int(id))),
		Listen:            "127.0.0.1:0",
		NodeID:            id,
		Flush:             c.flush,
		FlushInterval:     time.Second,
		DefaultPartitions: 1,
		ClusterListen:     routes[id],
		ClusterName:       "sluice",
		SessionTimeout:    c.sessionTimeout,
		ReplicaLagMax:     10 * time.Second,
	}
	for j, r := range routes {
		if int32(j) != id {
			cfg.Peers = append(cfg.Peers, r)
		}
	}
	return cfg
}

// addrs are the nodes' Kafka addresses.
func (lc *localCluster) addrs() []string {
	var out []string
	for _, n := range lc.nodes {
		if n != nil {
			out = append(out, n.addr())
		}
	}
	return out
}

// restart starts killed node i again with the same data, route port and
// Kafka port, and serves it.
func (lc *localCluster) restart(ctx context.Context, i int) error {
	old := lc.nodes[i]
	cfg := old.cfg
	cfg.Listen = old.addr()
	n, err := startClusterNode(ctx, cfg, old.log)
	if err != nil {
		return err
	}
	n.serve()
	lc.nodes[i] = n
	return nil
}

// close closes the nodes concurrently: one by one, the last ones would
// each wait out their goodbye writes after the cluster lost its quorum.
func (lc *localCluster) close() {
	var wg sync.WaitGroup
	for _, n := range lc.nodes {
		if n != nil {
			wg.Go(func() {
				if err := n.close(); err != nil {
					fmt.Fprintf(os.Stderr, "sluice: closing cluster node %d: %v\n", n.cfg.NodeID, err)
				}
			})
		}
	}
	wg.Wait()
}
