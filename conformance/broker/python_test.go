package broker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/testnode"
)

// pythonProducer is a confluent-kafka-python producer with the idempotent
// producer on; it prints the partition and offset of every delivered record.
const pythonProducer = `
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "enable.idempotence": True, "acks": "all",
              "partitioner": "murmur2_random"})
failed = []
def done(err, msg):
    if err is not None:
        failed.append(str(err))
    else:
        print("%d %d %s %s" % (msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode()))
for i in range(int(sys.argv[3])):
    p.produce(sys.argv[2], key="user-%d" % (i % 17), value="event %d" % i, on_delivery=done)
    p.poll(0)
left = p.flush(30)
if failed or left:
    sys.exit("delivery failed: %r, %d undelivered" % (failed[:3], left))
`

// TestConfluentKafkaPythonProduces checks the Python client (librdkafka
// underneath, as shipped by Debian) against a real node: every delivery
// report it gets must match what franz-go then reads at that offset.
func TestConfluentKafkaPythonProduces(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import confluent_kafka").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-confluent-kafka is not installed; .ci/run must apt-get install it")
		}
		t.Skip("python3-confluent-kafka not installed")
	}
	node := testnode.Start(t, t.TempDir())
	createTopic(t, node.Addr, "from-python", 4, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", pythonProducer, node.Addr, "from-python", "400").CombinedOutput()
	if err != nil {
		t.Fatalf("python producer: %v\n%s", err, out)
	}
	want := map[string]string{} // "partition offset" → "key value"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var p, o int
		var k, v1, v2 string
		if _, err := fmt.Sscanf(line, "%d %d %s %s %s", &p, &o, &k, &v1, &v2); err != nil {
			t.Fatalf("unexpected producer output line %q", line)
		}
		want[fmt.Sprintf("%d %d", p, o)] = k + " " + v1 + " " + v2
	}
	if len(want) != 400 {
		t.Fatalf("%d distinct delivery reports, want 400", len(want))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.ConsumeTopics("from-python"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := 0
	for seen < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", seen, len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			at := fmt.Sprintf("%d %d", r.Partition, r.Offset)
			if got := string(r.Key) + " " + string(r.Value); want[at] != got {
				t.Fatalf("at %s: read %q, producer reported %q", at, got, want[at])
			}
			seen++
		})
	}
}
