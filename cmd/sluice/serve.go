package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/kafka"
	sluicehost "github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
)

// cleanInterval is how often the broker runs retention and compaction.
const cleanInterval = 30 * time.Second

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a sluice node",
		Long: `Run a sluice node: the log, the Kafka protocol listener in front of it, and the
processing jobs deployed to it (see 'sluice job'), whose admin API shares the
HTTP listener of /metrics (--metrics-listen).

With no configuration it runs a single node on 127.0.0.1:9092 storing its data
in ./sluice-data. Every setting is a flag, a key of the --config file (same
name, e.g. "data-dir: /var/lib/sluice") and an environment variable (SLUICE_
plus the name in capitals with "-" as "_", e.g. SLUICE_DATA_DIR). Flags win
over the environment, which wins over the file.

With --jobs-dir DIR the node keeps the job files in DIR deployed: every
*.yaml or *.yml file there is a job, deployed when it appears or its content
changes (in place over the running version) and stopped when it is removed.
A file that does not load is logged and noted in the job's history; the
running version keeps running.

With --cluster-listen and --peers the node joins a replicated cluster of
nodes started the same way: topics get a replication factor, partition
leaders move off dead nodes, and consumer groups are coordinated across the
cluster ('sluice cluster status' shows it; see the README's "Cluster").
Processing jobs run on single nodes only for now.

The node logs one "sluice ready" line, with the listen addresses, once it
accepts connections. SIGINT or SIGTERM stop it cleanly: the listeners close,
in-flight requests finish, every job's tasks take a final checkpoint and every
partition is flushed and closed.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := newServeViper(cmd.Flags())
			if err != nil {
				return err
			}
			cfg, err := loadServeConfig(v)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg)
		},
	}
	addServeFlags(cmd.Flags())
	return cmd
}

// serve runs a node until ctx is cancelled, then shuts it down in the
// reverse order of starting: listener and connections first, so no request
// reaches a closing broker, then the broker, which flushes every partition.
func serve(ctx context.Context, cfg serveConfig) (err error) {
	log := cfg.newLogger()
	slog.SetDefault(log)
	if cfg.clustered() {
		return serveCluster(ctx, cfg)
	}

	b, err := broker.Open(cfg.brokerConfig(log, false))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); cerr != nil {
			log.Error("closing broker", "err", cerr)
			err = errors.Join(err, cerr)
		} else {
			log.Info("broker closed; all partitions flushed")
		}
	}()

	// One group coordinator serves both the Kafka group APIs and the job
	// manager, whose tasks checkpoint their input offsets as group commits
	// (group "sluice-job-<name>"), so `sluice group describe` shows them.
	coord, err := group.New(b, group.Options{})
	if err != nil {
		return fmt.Errorf("group coordinator: %w", err)
	}
	defer coord.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	host, port, err := advertised(cfg.AdvertisedAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}

	reg := newMetricsRegistry()
	srv, err := kafka.NewServer(b, kafka.Config{
		AdvertisedHost: host,
		AdvertisedPort: port,
		Logger:         log,
		Registerer:     reg,
		Groups:         coord,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("kafka server: %w", err)
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- b.Run(runCtx) }()
	defer func() {
		cancelRun()
		<-brokerDone
	}()

	// The job manager starts after the broker and stops before it: its
	// final checkpoints append to topics and commit offsets. It reloads
	// the jobs deployed before a restart and starts the running ones.
	jobs, err := sluicehost.NewManager(ctx, sluicehost.Config{
		DataDir:    cfg.DataDir,
		Broker:     b,
		Offsets:    coord.Offsets(),
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		ln.Close()
		srv.Close()
		return fmt.Errorf("job manager: %w", err)
	}
	defer func() {
		if cerr := jobs.Close(); cerr != nil {
			log.Error("closing job manager", "err", cerr)
			err = errors.Join(err, cerr)
		}
	}()

	// Deferred after the manager's Close, so it runs before it: no admin
	// request reaches a closing manager.
	metrics, err := startMetrics(cfg.MetricsListen, reg, admin.NewHandler(jobs, log), log)
	if err != nil {
		ln.Close()
		srv.Close()
		return err
	}
	defer metrics.close()

	// The jobs directory is watched once the manager is up and stops
	// before it closes (deferred later, so run earlier).
	if cfg.JobsDir != "" {
		dir := newJobsDir(cfg.JobsDir, jobs, log, jobsDirInterval)
		dir.start(ctx)
		defer dir.stop()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()

	adv := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if host == "" {
		adv = "(each connection's local address):" + strconv.Itoa(int(port))
	}
	log.Info("sluice ready", "listen", ln.Addr().String(), "advertised", adv,
		"metrics", metrics.addr(), "admin", metrics.addr(), "jobs", len(jobs.List()), "data_dir", cfg.DataDir, "node_id", cfg.NodeID, "flush", broker.FlushModeName(cfg.Flush))

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-serveDone:
		// The listener failed on its own; nothing is left to serve.
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

// forceExitOnSecondSignal lets an operator abandon a shutdown that hangs,
// for example on a stuck disk; the log's recovery handles the torn tail.
func forceExitOnSecondSignal(log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	log.Error("second signal: exiting without a clean shutdown")
	os.Exit(1)
}

// isServerClosed reports whether Serve's error only says that Close was
// called; the server may use its own sentinel for that.
func isServerClosed(err error) bool {
	return errors.Is(err, kafka.ErrServerClosed)
}

// advertised works out the address that metadata responses hand to
// clients. A wildcard listen address cannot be dialled, so for one the host
// is left empty and the Kafka server answers each client with the local
// address of that client's connection, which the client evidently reaches.
func advertised(configured string, bound net.Addr) (string, int32, error) {
	if configured != "" {
		host, portStr, err := net.SplitHostPort(configured)
		if err != nil {
			return "", 0, fmt.Errorf("advertised-addr %q: %w", configured, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			return "", 0, fmt.Errorf("advertised-addr %q: port must be 1..65535", configured)
		}
		return host, int32(port), nil
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return "", 0, fmt.Errorf("listener address %v is not TCP", bound)
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = ""
	}
	return host, int32(tcp.Port), nil
}
