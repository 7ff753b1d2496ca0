package kafka

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitReq is an OffsetCommit v8 of one partition from outside any group.
func commitReq(group, topic string, offset int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.Generation = group, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Offset, rp.LeaderEpoch = offset, -1
	rt.Partitions = []kmsg.OffsetCommitRequestTopicPartition{rp}
	req.Topics = []kmsg.OffsetCommitRequestTopic{rt}
	return req
}

// BenchmarkOffsetCommit measures OffsetCommit throughput over loopback
// with concurrent committers, each on its own connection and group, one
// request at a time as clients commit; every answer waits for the fsync,
// so the rate shows how well concurrent commits share fsyncs.
//
// Run: go test -run XXX -bench BenchmarkOffsetCommit -benchtime 3s ./broker/kafka
func BenchmarkOffsetCommit(b *testing.B) {
	for _, committers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			e := newEnv(b)
			e.createTopic("in", 1, nil)
			conns := make([]*rawConn, committers)
			for i := range conns {
				conns[i] = e.raw()
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i, rc := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					group := fmt.Sprint("bench-", i)
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						resp := rc.do(commitReq(group, "in", n)).(*kmsg.OffsetCommitResponse)
						if c := resp.Topics[0].Partitions[0].ErrorCode; c != 0 {
							b.Errorf("commit: %s", errorName(c))
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
		})
	}
}

// BenchmarkProduceWithCommits is the kgo produce benchmark (flush=sync)
// while 16 committers commit offsets as fast as they can: offsets go to
// their own partition, so produce should barely notice.
//
// Run: go test -run XXX -bench 'BenchmarkProduce(WithCommits)?$/kgo/flush=sync' -benchtime 3s ./broker/kafka
func BenchmarkProduceWithCommits(b *testing.B) {
	b.Run("kgo/flush=sync", func(b *testing.B) {
		var commits atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		hook := func(e *testEnv) {
			e.createTopic("in", 1, nil)
			for i := range 16 {
				rc := e.raw()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := int64(1); ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						rc.do(commitReq(fmt.Sprint("bg-", i), "in", n))
						commits.Add(1)
					}
				}()
			}
		}
		start := time.Now()
		benchProduceKgoWith(b, "sync", hook)
		close(stop)
		wg.Wait()
		b.ReportMetric(float64(commits.Load())/time.Since(start).Seconds(), "commits/s")
	})
}
