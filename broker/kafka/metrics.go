package kafka

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
)

// metrics are the front door's Prometheus metrics. Children of the labelled
// vectors are resolved once and cached, so the produce and fetch paths do
// not hash label values per request.
type metrics struct {
	reg        prometheus.Registerer
	registered []prometheus.Collector

	connections  prometheus.Gauge
	fetchWaiting prometheus.Gauge
	requests     *prometheus.CounterVec
	errors       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	bytesIn      *prometheus.CounterVec
	bytesOut     *prometheus.CounterVec
	recordsIn    *prometheus.CounterVec
	recordsOut   *prometheus.CounterVec

	byKey  [maxAPIKey]atomic.Pointer[apiMetrics]
	topics sync.Map // topic name -> *topicMetrics
}

type apiMetrics struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

type topicMetrics struct {
	bytesIn, bytesOut, recordsIn, recordsOut prometheus.Counter
}

// newMetrics creates the front door's metrics and registers them, with
// extra collectors (the group coordinator's lag), on reg.
func newMetrics(b *broker.Broker, reg prometheus.Registerer, extra ...prometheus.Collector) (*metrics, error) {
	const ns, sub = "sluice", "kafka"
	m := &metrics{
		reg: reg,
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections", Help: "Open Kafka client connections."}),
		fetchWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "fetch_waiting", Help: "Fetch requests in a long-poll wait for data."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "Kafka requests handled, by API."}, []string{"api"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "errors_total", Help: "Error codes returned (per topic, partition or resource) and malformed requests, by API and Kafka error name."},
			[]string{"api", "error"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_duration_seconds", Help: "Time from reading a request to writing its response, by API. Includes long-poll waits.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 14)}, []string{"api"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_in_total", Help: "Record batch bytes appended by produce requests, by topic."}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_out_total", Help: "Record batch bytes returned by fetch requests, by topic."}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_in_total", Help: "Records appended by produce requests (from batch headers), by topic."}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_out_total", Help: "Records returned by fetch requests (from batch headers), by topic."}, []string{"topic"}),
	}
	if reg == nil {
		return m, nil
	}
	all := []prometheus.Collector{m.connections, m.fetchWaiting, m.requests, m.errors, m.latency,
		m.bytesIn, m.bytesOut, m.recordsIn, m.recordsOut, newPartitionCollector(b)}
	all = append(all, extra...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
		m.registered = append(m.registered, c)
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}

func (m *metrics) api(key int16) *apiMetrics {
	if key < 0 || int(key) >= len(m.byKey) {
		return nil
	}
	if am := m.byKey[key].Load(); am != nil {
		return am
	}
	// Racing creators get the same children from the vectors.
	name := kmsg.NameForKey(key)
	am := &apiMetrics{requests: m.requests.WithLabelValues(name), latency: m.latency.WithLabelValues(name)}
	m.byKey[key].Store(am)
	return am
}

func (m *metrics) observe(key int16, d time.Duration) {
	if am := m.api(key); am != nil {
		am.requests.Inc()
		am.latency.Observe(d.Seconds())
	}
}

func (m *metrics) countError(key int16, code int16) {
	m.errors.WithLabelValues(kmsg.NameForKey(key), errorName(code)).Inc()
}

func (m *metrics) countMalformed(key int16) {
	m.errors.WithLabelValues(kmsg.NameForKey(key), "MALFORMED_REQUEST").Inc()
}

func (m *metrics) topic(name string) *topicMetrics {
	if tm, ok := m.topics.Load(name); ok {
		return tm.(*topicMetrics)
	}
	tm := &topicMetrics{
		bytesIn:    m.bytesIn.WithLabelValues(name),
		bytesOut:   m.bytesOut.WithLabelValues(name),
		recordsIn:  m.recordsIn.WithLabelValues(name),
		recordsOut: m.recordsOut.WithLabelValues(name),
	}
	actual, _ := m.topics.LoadOrStore(name, tm)
	return actual.(*topicMetrics)
}

// forgetTopic drops a deleted topic's series so they do not outlive it.
func (m *metrics) forgetTopic(name string) {
	m.topics.Delete(name)
	for _, v := range []*prometheus.CounterVec{m.bytesIn, m.bytesOut, m.recordsIn, m.recordsOut} {
		v.DeleteLabelValues(name)
	}
}

// partitionCollector reports every partition's offsets at scrape time, so
// nothing is tracked on the produce path.
type partitionCollector struct {
	b                           *broker.Broker
	logEnd, highWater, logStart *prometheus.Desc
}

func newPartitionCollector(b *broker.Broker) *partitionCollector {
	labels := []string{"topic", "partition"}
	return &partitionCollector{
		b:         b,
		logEnd:    prometheus.NewDesc("sluice_partition_log_end_offset", "Offset the next appended record will get.", labels, nil),
		highWater: prometheus.NewDesc("sluice_partition_high_watermark", "End of what consumers may read.", labels, nil),
		logStart:  prometheus.NewDesc("sluice_partition_log_start_offset", "First offset still stored.", labels, nil),
	}
}

func (pc *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pc.logEnd
	ch <- pc.highWater
	ch <- pc.logStart
}

func (pc *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range pc.b.Topics() {
		for p := int32(0); p < t.Partitions; p++ {
			part, err := pc.b.Partition(t.Name, p)
			if err != nil {
				if errors.Is(err, broker.ErrUnknownTopic) {
					break // deleted while we were scraping
				}
				continue
			}
			ps := strconv.Itoa(int(p))
			ch <- prometheus.MustNewConstMetric(pc.logEnd, prometheus.GaugeValue, float64(part.LogEndOffset()), t.Name, ps)
			ch <- prometheus.MustNewConstMetric(pc.highWater, prometheus.GaugeValue, float64(part.HighWatermark()), t.Name, ps)
			ch <- prometheus.MustNewConstMetric(pc.logStart, prometheus.GaugeValue, float64(part.LogStartOffset()), t.Name, ps)
		}
	}
}
