package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-io/sluice/broker"
)

// serveCluster runs a node of a replicated cluster until ctx is cancelled:
// the broker (with replication owning the high watermarks), the embedded
// NATS server that joins the peers, the replica manager, and the Kafka
// listener in front of them (see clusterNode). Processing jobs do not run
// in cluster mode yet. Shutdown goes in reverse:
// the listener first, then replication, then the NATS node (which tells the
// others it left), then the broker, which flushes every partition.
func serveCluster(ctx context.Context, cfg serveConfig) (err error) {
	log := cfg.newLogger()

	n, err := startClusterNode(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := n.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	metrics, err := startMetrics(cfg.MetricsListen, n.reg, nil, log)
	if err != nil {
		return err
	}
	defer metrics.close()

	served := n.serve()
	log.Info("sluice ready", "listen", n.ln.Addr().String(), "advertised", n.addr(),
		"cluster_listen", cfg.ClusterListen, "peers", cfg.Peers, "nats", n.node.ClientURL(), "metrics", metrics.addr(),
		"data_dir", cfg.DataDir, "node_id", cfg.NodeID, "controller", n.node.ControllerID(), "flush", broker.FlushModeName(cfg.Flush))

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case <-served:
		n.stopServing()
		return fmt.Errorf("kafka listener: %w", n.serveErr)
	}
	go forceExitOnSecondSignal(log)
	n.stopServing()
	return nil
}
