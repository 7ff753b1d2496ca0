package host

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the host's Prometheus collectors, shared by all jobs.
type metrics struct {
	recordsIn  *prometheus.CounterVec
	recordsOut *prometheus.CounterVec
	restarts   *prometheus.CounterVec
	faults     *prometheus.CounterVec
	swaps      *prometheus.CounterVec
	swapPause  *prometheus.HistogramVec
	swapFails  *prometheus.CounterVec
	process    *prometheus.HistogramVec
	lag        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_task_records_in_total",
			Help: "Input records processed by a task.",
		}, []string{"job", "partition"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_task_records_out_total",
			Help: "Records a task appended to its output topics.",
		}, []string{"job", "partition"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_task_restarts_total",
			Help: "Restarts of a task after a failure.",
		}, []string{"job", "partition"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_task_instance_faults_total",
			Help: "Operator instances that trapped or hit a limit and were replaced while the task went on.",
		}, []string{"job", "partition"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_task_swaps_total",
			Help: "Times a task changed its operator to a new version of the job in place.",
		}, []string{"job", "partition"}),
		swapPause: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_task_swap_pause_seconds",
			Help:    "Pause of a task while it changed versions: from the old instance's last batch to the new instance being ready.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}, []string{"job"}),
		swapFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_job_failed_swaps_total",
			Help: "New versions of a job that were refused (validation, init) or could not start, the old version kept running.",
		}, []string{"job"}),
		process: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_task_process_seconds",
			Help:    "Time of one sluice_process call (one input batch).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"job"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_task_lag",
			Help: "Records in an input partition after the task's last checkpoint.",
		}, []string{"job", "topic", "partition"}),
	}
	if reg != nil {
		m.recordsIn = register(reg, m.recordsIn)
		m.recordsOut = register(reg, m.recordsOut)
		m.restarts = register(reg, m.restarts)
		m.faults = register(reg, m.faults)
		m.swaps = register(reg, m.swaps)
		m.swapPause = register(reg, m.swapPause)
		m.swapFails = register(reg, m.swapFails)
		m.process = register(reg, m.process)
		m.lag = register(reg, m.lag)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (two managers in one process share the registry's).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// taskMetrics are one task's children of the vectors, looked up once so
// that the hot path only does atomic adds.
type taskMetrics struct {
	recordsIn      prometheus.Counter
	recordsOut     prometheus.Counter
	restarts       prometheus.Counter
	instanceFaults prometheus.Counter
	swaps          prometheus.Counter
	swapPause      prometheus.Observer
	process        prometheus.Observer
	lags           map[*inputSource]prometheus.Gauge
}

func (m *metrics) forTask(job string, partition int32, inputs []*inputSource) taskMetrics {
	p := strconv.Itoa(int(partition))
	tm := taskMetrics{
		recordsIn:      m.recordsIn.WithLabelValues(job, p),
		recordsOut:     m.recordsOut.WithLabelValues(job, p),
		restarts:       m.restarts.WithLabelValues(job, p),
		instanceFaults: m.faults.WithLabelValues(job, p),
		swaps:          m.swaps.WithLabelValues(job, p),
		swapPause:      m.swapPause.WithLabelValues(job),
		process:        m.process.WithLabelValues(job),
		lags:           make(map[*inputSource]prometheus.Gauge, len(inputs)),
	}
	for _, in := range inputs {
		tm.lags[in] = m.lag.WithLabelValues(job, in.topic, p)
	}
	return tm
}

func (tm taskMetrics) lag(in *inputSource) prometheus.Gauge { return tm.lags[in] }
