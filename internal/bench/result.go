package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one measured run.
type Result struct {
	System string // "sluice" or "jetstream"
	// Replicas is how many copies each record has when acknowledged with
	// acks=all (0 or 1: unreplicated). It is shown after the system's name.
	Replicas int
	Client   string // how it was driven: "raw", "kgo", "async", "ordered"
	Records  int64
	Bytes    int64 // payload bytes: records × record size
	Elapsed  time.Duration
	// Latencies are per produce request (time to its acknowledgement) or
	// per fetch; what one sample covers is in LatencyOf.
	Latencies []time.Duration
	LatencyOf string
}

// Name is the system with its replication factor when replicated:
// "sluice", "jetstream-R3".
func (r Result) Name() string {
	if r.Replicas > 1 {
		return fmt.Sprintf("%s-R%d", r.System, r.Replicas)
	}
	return r.System
}

// RecordsPerSec is the throughput in records.
func (r Result) RecordsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Records) / r.Elapsed.Seconds()
}

// MBPerSec is the payload throughput in megabytes (10^6 bytes) per second.
func (r Result) MBPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the latencies, or 0
// without samples.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.Latencies)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// WriteTable prints results as an aligned table, and the ratio of the
// first sluice result to the first JetStream one when both are present.
func WriteTable(w io.Writer, title string, results []Result) {
	fmt.Fprintf(w, "%s\n", title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tclient\trecords\trecords/s\tMB/s\tp50\tp99\tlatency of\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1f\t%s\t%s\t%s\t\n", r.Name(), r.Client, r.Records,
			thousands(r.RecordsPerSec()), r.MBPerSec(), latency(r, 0.50), latency(r, 0.99), r.LatencyOf)
	}
	tw.Flush()
	var s, js *Result
	for i := range results {
		switch {
		case results[i].System == "sluice" && s == nil:
			s = &results[i]
		case results[i].System == "jetstream" && js == nil:
			js = &results[i]
		}
	}
	if s != nil && js != nil && js.RecordsPerSec() > 0 {
		fmt.Fprintf(w, "%s/%s: %.2fx records/s\n", s.Name(), js.Name(), s.RecordsPerSec()/js.RecordsPerSec())
	}
}

func latency(r Result, q float64) string {
	if len(r.Latencies) == 0 {
		return "-"
	}
	return r.Percentile(q).Round(time.Microsecond).String()
}

// thousands formats n with thousands separators, which makes figures of
// six or seven digits readable at a glance.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
