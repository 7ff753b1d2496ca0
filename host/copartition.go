package host

import (
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

// A job with several inputs (tables included) joins partition k of each
// with partition k of the others, which is only right if every topic puts
// a key in the same partition: the same partition count (checked by
// planTopics) and the same partitioner. A topic does not record which
// partitioner its producers used, so deploy looks at the keys already
// stored: it samples keyed records of every partition and works out which
// of the partitioners in use could have placed them all — Kafka's default
// (murmur2, also sluice's and franz-go's) and librdkafka's default
// (CRC-32, kcat and confluent-kafka's "consistent_random"). The job is
// refused when no single partitioner explains every sampled record of
// every source. Empty topics, null keys and single-partition topics tell
// nothing and pass.

// partitioners a key placement is checked against.
var partitioners = []struct {
	name string
	of   func(key []byte, n int32) int32
}{
	{"murmur2 (Kafka's default)", partitionForKey},
	{"CRC-32 (librdkafka's default)", func(key []byte, n int32) int32 { return int32(crc32.ChecksumIEEE(key) % uint32(n)) }},
}

// copartitionSample bounds the records read per partition.
const (
	copartitionSampleBytes   = 256 << 10
	copartitionSampleRecords = 200
)

// misplaced is a sampled record that a partitioner would have put
// elsewhere.
type misplaced struct {
	partition int32
	offset    int64
	key       []byte
	want      int32
}

// sourceSample is what the sample of one topic says.
type sourceSample struct {
	topic   string
	keys    int          // keyed records sampled
	fits    []bool       // per partitioner: every sampled key is where it would put it
	counter []*misplaced // per partitioner: a record that contradicts it
}

// sampleTopic reads the start and the end of every partition of a topic.
func sampleTopic(topic string, parts []*storage.Partition) (*sourceSample, error) {
	n := int32(len(parts))
	s := &sourceSample{topic: topic, fits: make([]bool, len(partitioners)), counter: make([]*misplaced, len(partitioners))}
	for i := range s.fits {
		s.fits[i] = true
	}
	var buf []byte
	for p, part := range parts {
		lso, hw := part.LogStartOffset(), part.HighWatermark()
		if hw <= lso || n == 1 {
			continue
		}
		starts := []int64{lso}
		if hw-lso > copartitionSampleRecords {
			starts = append(starts, hw-copartitionSampleRecords/2)
		}
		for _, from := range starts {
			data, err := part.ReadInto(buf, from, copartitionSampleBytes)
			if err != nil {
				return nil, fmt.Errorf("sampling %s-%d: %w", topic, p, err)
			}
			buf = data[:0]
			seen := 0
			for rest := data; len(rest) > 0 && seen < copartitionSampleRecords; {
				b, h, r, err := batch.Next(rest)
				if err != nil {
					break
				}
				rest = r
				if h.IsControl() {
					continue
				}
				err = batch.Records(b, func(rec *batch.Record) bool {
					if rec.Key == nil {
						return true
					}
					seen++
					s.keys++
					for i, pt := range partitioners {
						if want := pt.of(rec.Key, n); want != int32(p) && s.fits[i] {
							s.fits[i] = false
							s.counter[i] = &misplaced{int32(p), rec.Offset, append([]byte(nil), rec.Key...), want}
						}
					}
					return seen < copartitionSampleRecords
				})
				if err != nil {
					return nil, fmt.Errorf("sampling %s-%d: %w", topic, p, err)
				}
			}
		}
	}
	return s, nil
}

// checkCopartitioned samples the sources of a multi-source job and
// returns an error that says which topic is placed differently and how to
// fix it, or nil.
func checkCopartitioned(sources []string, parts [][]*storage.Partition) error {
	if len(sources) < 2 {
		return nil
	}
	common := make([]bool, len(partitioners))
	for i := range common {
		common[i] = true
	}
	samples := make([]*sourceSample, len(sources))
	for i, topic := range sources {
		s, err := sampleTopic(topic, parts[i])
		if err != nil {
			return err
		}
		samples[i] = s
		fitsAny := false
		for k := range partitioners {
			common[k] = common[k] && s.fits[k]
			fitsAny = fitsAny || s.fits[k]
		}
		if !fitsAny {
			m := s.counter[0]
			return fmt.Errorf("%w: topic %s is not partitioned by key: its record at partition %d offset %d has key %q, which Kafka's default partitioner puts in partition %d (and librdkafka's in another); "+
				"a job with several inputs or tables joins partition k of each with partition k of the others, so every one must be partitioned by key with the same partitioner: %s",
				ErrInvalidJob, topic, m.partition, m.offset, m.key, m.want, repartitionHint(topic))
		}
	}
	for k := range partitioners {
		if common[k] {
			return nil
		}
	}
	// Each topic fits some partitioner, but not the same one.
	var desc []string
	for _, s := range samples {
		var names []string
		for k, pt := range partitioners {
			if s.fits[k] && s.keys > 0 {
				names = append(names, pt.name)
			}
		}
		if len(names) > 0 {
			desc = append(desc, fmt.Sprintf("%s by %s", s.topic, strings.Join(names, " or ")))
		}
	}
	return fmt.Errorf("%w: inputs and tables are partitioned by different partitioners (%s), so equal keys are in different partitions; produce them all with the same one (kcat: -X partitioner=murmur2_random; confluent-kafka: partitioner=murmur2_random), or %s",
		ErrInvalidJob, strings.Join(desc, "; "), repartitionHint(samples[0].topic))
}

func repartitionHint(topic string) string {
	return fmt.Sprintf("repartition %s with a job that reads it and emits every record by key (partition -1) to a new topic with the same partition count as the others, then use that topic instead", topic)
}
