package group

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	lagDesc = prometheus.NewDesc("sluice_group_lag",
		"Consumer group lag: the partition's high watermark minus the group's committed offset.",
		[]string{"group", "topic", "partition"}, nil)
	committedDesc = prometheus.NewDesc("sluice_group_committed_offset",
		"A consumer group's committed offset.",
		[]string{"group", "topic", "partition"}, nil)
)

// Collector exports committed offsets and lag, computed when scraped (so
// there is nothing to keep up to date on the commit path). Partitions of
// deleted topics are left out.
func (c *Coordinator) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Coordinator }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- committedDesc
}

func (x collector) Collect(ch chan<- prometheus.Metric) {
	s := x.c.offsets
	for _, g := range s.Groups() {
		for tp, o := range s.FetchAll(g) {
			part := strconv.Itoa(int(tp.Partition))
			ch <- prometheus.MustNewConstMetric(committedDesc, prometheus.GaugeValue, float64(o.Offset), g, tp.Topic, part)
			p, err := x.c.b.Partition(tp.Topic, tp.Partition)
			if err != nil {
				continue
			}
			lag := max(p.HighWatermark()-o.Offset, 0)
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), g, tp.Topic, part)
		}
	}
}
