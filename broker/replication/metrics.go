package replication

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the replication series: elections, ISR changes, truncations,
// and per node the partitions it leads that are under-replicated and the
// largest lag of an in-sync follower.
type metrics struct {
	m *Manager

	leaderElections prometheus.Counter
	isrShrinks      prometheus.Counter
	isrExpands      prometheus.Counter
	truncations     prometheus.Counter
	underReplicated prometheus.Gauge
	leaderCount     prometheus.Gauge
	maxLag          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	mt := &metrics{
		leaderElections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_replication_leader_elections_total",
			Help: "Times this node became the leader of a partition.",
		}),
		isrShrinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_replication_isr_shrinks_total",
			Help: "In-sync replica sets this node (as leader) shrank because a follower fell behind.",
		}),
		isrExpands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_replication_isr_expands_total",
			Help: "In-sync replica sets this node (as leader) grew because a follower caught up.",
		}),
		truncations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_replication_truncations_total",
			Help: "Divergent log tails this node (as follower) removed after a leader change.",
		}),
		underReplicated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_replication_under_replicated_partitions",
			Help: "Partitions led by this node whose ISR is smaller than their replica set.",
		}),
		leaderCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_replication_leader_partitions",
			Help: "Partitions led by this node.",
		}),
		maxLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_replication_max_lag_records",
			Help: "Largest number of records an in-sync follower is behind, over the partitions this node leads.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{mt.leaderElections, mt.isrShrinks, mt.isrExpands, mt.truncations, mt.underReplicated, mt.leaderCount, mt.maxLag} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("replication: metrics: %w", err)
				}
			}
		}
	}
	return mt, nil
}

// update refreshes the gauges from the replicas.
func (mt *metrics) update() {
	var under, leading int
	var lag int64
	for _, r := range mt.m.allReplicas() {
		l, u, lead := r.replicationLag()
		if !lead {
			continue
		}
		leading++
		if u {
			under++
		}
		lag = max(lag, l)
	}
	mt.underReplicated.Set(float64(under))
	mt.leaderCount.Set(float64(leading))
	mt.maxLag.Set(float64(lag))
}
