package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/kafka"
	"github.com/sluice-io/sluice/broker/replication"
)

// serveCluster runs a node of a replicated cluster until ctx is cancelled:
// the broker (with replication owning the high watermarks), the embedded
// NATS server that joins the peers, the replica manager, and the Kafka
// listener in front of them. Consumer groups and processing jobs do not run
// in cluster mode yet. Shutdown goes in reverse: the listener first, then
// replication, then the NATS node (which tells the others it left), then
// the broker, which flushes every partition.
func serveCluster(ctx context.Context, cfg serveConfig) (err error) {
	log := cfg.newLogger()

	b, err := broker.Open(cfg.brokerConfig(log, true))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); cerr != nil {
			log.Error("closing broker", "err", cerr)
			err = errors.Join(err, cerr)
		}
	}()

	// The Kafka listener is bound first: the other nodes learn this
	// node's advertised address from its liveness record.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	host, port, err := advertised(cfg.AdvertisedAddr, ln.Addr())
	if err != nil {
		return err
	}
	if host == "" {
		// Peers and clients need a dialable address for this node.
		return errors.New("cluster mode needs --advertised-addr when --listen is a wildcard address")
	}

	node, err := cluster.Start(ctx, cluster.Config{
		NodeID:         cfg.NodeID,
		DataDir:        cfg.DataDir,
		ClusterName:    cfg.ClusterName,
		ClusterListen:  cfg.ClusterListen,
		Peers:          cfg.Peers,
		Self:           cluster.NodeInfo{KafkaHost: host, KafkaPort: port, Rack: cfg.Rack},
		SessionTimeout: cfg.SessionTimeout,
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			log.Warn("leaving the cluster", "err", cerr)
		}
	}()

	reg := newMetricsRegistry()
	repl, err := replication.Start(replication.Config{
		Node:                     node,
		Broker:                   b,
		ReplicaLagMax:            cfg.ReplicaLagMax,
		DefaultReplicationFactor: cfg.DefaultReplicas,
		AutoCreateTopics:         cfg.AutoCreateTopics,
		DefaultPartitions:        cfg.DefaultPartitions,
		Registerer:               reg,
		Logger:                   log,
	})
	if err != nil {
		return fmt.Errorf("replication: %w", err)
	}
	defer repl.Close()

	srv, err := kafka.NewServer(b, kafka.Config{
		AdvertisedHost: host,
		AdvertisedPort: port,
		ClusterID:      node.Meta().ClusterID(),
		Logger:         log,
		Registerer:     reg,
		Cluster:        repl,
	})
	if err != nil {
		return fmt.Errorf("kafka server: %w", err)
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- b.Run(runCtx) }()
	defer func() {
		cancelRun()
		<-brokerDone
	}()

	metrics, err := startMetrics(cfg.MetricsListen, reg, nil, log)
	if err != nil {
		srv.Close()
		return err
	}
	defer metrics.close()

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	log.Info("sluice ready", "listen", ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))),
		"cluster_listen", cfg.ClusterListen, "peers", cfg.Peers, "metrics", metrics.addr(),
		"data_dir", cfg.DataDir, "node_id", cfg.NodeID, "controller", node.ControllerID(), "flush", broker.FlushModeName(cfg.Flush))

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-serveDone:
		srv.Close()
		return fmt.Errorf("kafka listener: %w", err)
	}
	go forceExitOnSecondSignal(log)
	if err := srv.Close(); err != nil {
		log.Warn("closing kafka server", "err", err)
	}
	if err := <-serveDone; err != nil && !errors.Is(err, net.ErrClosed) && !isServerClosed(err) {
		log.Warn("kafka listener stopped", "err", err)
	}
	return nil
}
