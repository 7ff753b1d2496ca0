// Package clustertest starts in-process sluice clusters for tests: N nodes
// with embedded NATS servers on free loopback ports, data under a test
// directory, stopped when the test ends.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/internal/loopback"
)

// SessionTimeout is the liveness timeout test clusters use: short, so that
// failover tests are quick, but well above a loaded CI machine's hiccups.
const SessionTimeout = 1500 * time.Millisecond

// startAttempts covers the window between reserving a port and the server
// binding it, in which another process can take it.
const startAttempts = 3

// FreePorts reserves n loopback ports by listening on :0 and closing. The
// ports can be taken again before use; StartLocalCluster retries for that.
func FreePorts(n int) ([]int, error) { return loopback.FreePorts(n) }

// Logger is the logger test nodes use: silent unless SLUICE_TEST_LOG is set
// (then text at debug level on stderr, NATS logs included).
func Logger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Configs builds the configurations of an n-node cluster with node ids
// 0..n-1 on the given route ports, data in baseDir/node-<id>. n == 1 gives a
// standalone node.
func Configs(n int, baseDir string, ports []int) []cluster.Config {
	cfgs := make([]cluster.Config, n)
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = "127.0.0.1:" + strconv.Itoa(ports[i])
	}
	for i := range n {
		cfg := cluster.Config{
			NodeID:         int32(i),
			DataDir:        filepath.Join(baseDir, "node-"+strconv.Itoa(i)),
			SessionTimeout: SessionTimeout,
			Logger:         Logger().With("test-node", i),
			NATSLog:        os.Getenv("SLUICE_TEST_LOG") != "",
			Self:           cluster.NodeInfo{KafkaHost: "127.0.0.1", KafkaPort: int32(19092 + i)},
		}
		if n > 1 {
			cfg.ClusterListen = addrs[i]
			for j, a := range addrs {
				if j != i {
					cfg.Peers = append(cfg.Peers, a)
				}
			}
		}
		cfgs[i] = cfg
	}
	return cfgs
}

// StartLocalCluster starts n nodes concurrently (a clustered node cannot
// finish starting before a quorum is up) and registers their Close with
// t.Cleanup. mutate, if not nil, adjusts each configuration first. A failed
// start is retried with new ports and fresh directories under baseDir.
func StartLocalCluster(t testing.TB, n int, baseDir string, mutate func(*cluster.Config)) ([]*cluster.Node, error) {
	t.Helper()
	var errs []error
	for attempt := range startAttempts {
		ports, err := FreePorts(n)
		if err != nil {
			return nil, err
		}
		cfgs := Configs(n, filepath.Join(baseDir, "attempt-"+strconv.Itoa(attempt)), ports)
		if mutate != nil {
			for i := range cfgs {
				mutate(&cfgs[i])
			}
		}
		nodes, err := StartNodes(cfgs, 30*time.Second)
		if err == nil {
			t.Cleanup(func() { closeAll(nodes) })
			return nodes, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt+1, err))
	}
	return nil, errors.Join(errs...)
}

// StartNodes starts the given nodes concurrently; on any failure it stops
// the ones that started.
func StartNodes(cfgs []cluster.Config, timeout time.Duration) ([]*cluster.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nodes := make([]*cluster.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() { nodes[i], errs[i] = cluster.Start(ctx, cfg) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(nodes)
		return nil, err
	}
	return nodes, nil
}

// closeAll closes nodes concurrently: one by one, the last ones would each
// wait out their goodbye writes after the cluster lost its quorum.
func closeAll(nodes []*cluster.Node) {
	var wg sync.WaitGroup
	for _, node := range nodes {
		if node != nil {
			wg.Go(func() { node.Close() })
		}
	}
	wg.Wait()
}

// Restart starts a stopped node again with the same configuration (same
// data directory and ports), as a new incarnation.
func Restart(t testing.TB, old *cluster.Node) (*cluster.Node, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := cluster.Start(ctx, old.Config())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { node.Close() })
	return node, nil
}

// Controller returns the node that holds the controller lease, or nil.
func Controller(nodes []*cluster.Node) *cluster.Node {
	for _, node := range nodes {
		if node != nil && node.IsController() {
			return node
		}
	}
	return nil
}

// WaitFor polls cond until it holds or timeout passes, and fails the test
// then. It never sleeps longer than 20 ms between checks.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		// Polling with a deadline, not sleeping for synchronisation.
		<-time.After(5 * time.Millisecond)
	}
}
