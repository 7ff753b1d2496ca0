package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// murmur2 is Kafka's partitioner hash (org.apache.kafka.common.utils.Utils
// .murmur2), written out here so the test checks sluice against Kafka's
// definition rather than against the client sluice uses.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> 24
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

func kafkaPartition(key string, partitions int) int {
	return int(murmur2([]byte(key))&0x7fffffff) % partitions
}

// Vectors from Kafka's UtilsTest.testMurmur2.
func TestMurmur2MatchesKafka(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// Keyed lines go in and come back out exactly, each in the partition
// Kafka's partitioner assigns its key, in input order within a partition.
func TestProduceConsumeKeyed(t *testing.T) {
	n := startNode(t, t.TempDir())
	const partitions, records = 4, 2000
	n.ok("", "topic", "create", "kv", "--partitions", strconv.Itoa(partitions))

	var in strings.Builder
	type rec struct{ key, value string }
	var sent []rec
	for i := range records {
		r := rec{fmt.Sprintf("user-%d", i%97), fmt.Sprintf("event %d: a=b, \"quoted\" %s", i, strings.Repeat("z", i%13))}
		if i%250 == 0 {
			r.value = "" // empty values must survive as empty
		}
		sent = append(sent, r)
		fmt.Fprintf(&in, "%s|%s\n", r.key, r.value)
	}
	n.ok(in.String(), "produce", "kv", "--key-separator", "|")

	out := n.ok("", "consume", "kv", "--from-beginning", "--format", `%p\t%o\t%k\t%v\n`)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != records {
		t.Fatalf("consumed %d lines, want %d", len(lines), records)
	}
	byPartition := make([][]rec, partitions)
	lastOffset := []int64{-1, -1, -1, -1}
	for _, line := range lines {
		f := strings.SplitN(line, "\t", 4)
		if len(f) != 4 {
			t.Fatalf("malformed output line %q", line)
		}
		p, _ := strconv.Atoi(f[0])
		o, _ := strconv.ParseInt(f[1], 10, 64)
		if o <= lastOffset[p] {
			t.Errorf("partition %d: offset %d after %d", p, o, lastOffset[p])
		}
		lastOffset[p] = o
		if want := kafkaPartition(f[2], partitions); p != want {
			t.Errorf("key %q in partition %d, Kafka's partitioner says %d", f[2], p, want)
		}
		byPartition[p] = append(byPartition[p], rec{f[2], f[3]})
	}
	want := make([][]rec, partitions)
	for _, r := range sent {
		p := kafkaPartition(r.key, partitions)
		want[p] = append(want[p], r)
	}
	for p := range partitions {
		if !slices.Equal(byPartition[p], want[p]) {
			t.Errorf("partition %d: consumed records differ from those produced (%d vs %d records)", p, len(byPartition[p]), len(want[p]))
		}
	}
}

func TestConsumePartitionOffsetMax(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "p", "--partitions", "2")
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "v%d\n", i)
	}
	n.ok(in.String(), "produce", "p", "--partition", "1")

	got := n.ok("", "consume", "p", "--partition", "1", "--offset", "3", "--max", "4", "--format", `%p/%o=%v\n`)
	if want := "1/3=v3\n1/4=v4\n1/5=v5\n1/6=v6\n"; got != want {
		t.Errorf("consume --partition 1 --offset 3 --max 4:\n%s\nwant:\n%s", got, want)
	}
	if got := n.ok("", "consume", "p", "--partition", "0", "--from-beginning"); got != "" {
		t.Errorf("empty partition 0 printed %q", got)
	}
	// Without --from-beginning or --offset, reading starts at the end, and
	// without --follow there is then nothing to wait for.
	if got := n.ok("", "consume", "p"); got != "" {
		t.Errorf("consume from the end printed %q", got)
	}
	if got := n.ok("", "consume", "p", "--offset", "8"); got != "v8\nv9\n" {
		t.Errorf("consume --offset 8 over all partitions printed %q", got)
	}
	r := n.fails("", "consume", "p", "--partition", "7")
	if !strings.Contains(r.stderr, "partition 7 does not exist") {
		t.Errorf("consume of a missing partition: %s", r)
	}
	r = n.fails("", "consume", "nope", "--from-beginning")
	if !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("consume of a missing topic: %s", r)
	}
}

func TestConsumeJSON(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "j")
	n.ok("k1=hello\n", "produce", "j", "--key-separator", "=")
	n.ok("no key\n", "produce", "j")
	out := n.ok("", "consume", "j", "--from-beginning", "--format", "json")
	dec := json.NewDecoder(strings.NewReader(out))
	var got []jsonRecord
	for dec.More() {
		var r jsonRecord
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output is not JSON lines: %v\n%s", err, out)
		}
		got = append(got, r)
	}
	if len(got) != 2 || got[0].Key != "k1" || got[0].Value != "hello" || got[0].Offset != 0 ||
		got[1].Key != nil || got[1].Value != "no key" || got[1].Offset != 1 || got[1].Topic != "j" {
		t.Errorf("json records: %+v", got)
	}
	if got[0].Timestamp < time.Now().Add(-time.Hour).UnixMilli() {
		t.Errorf("timestamp %d is not recent", got[0].Timestamp)
	}
}

// --follow prints records written after it started, and exits 0 on
// SIGINT, like tail -f.
func TestConsumeFollow(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "f")
	n.ok("before\n", "produce", "f")

	cmd := exec.Command(sluiceBin, "consume", "f", "--from-beginning", "--follow", "--brokers", n.addr)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got, ok := <-lines:
			if !ok {
				t.Fatalf("consume --follow ended before printing %q; stderr:\n%s", want, stderr.String())
			}
			if got != want {
				t.Fatalf("consume --follow printed %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("consume --follow did not print %q within 30s", want)
		}
	}
	expect("before")
	n.ok("after\n", "produce", "f")
	expect("after")

	cmd.Process.Signal(syscall.SIGINT)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("consume --follow after SIGINT: %v; stderr:\n%s", err, stderr.String())
	}
}

func TestProduceFailures(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "x")
	r := n.fails("a:1\nno separator here\n", "produce", "x", "--key-separator", ":")
	if !strings.Contains(r.stderr, "line 2 has no key separator") {
		t.Errorf("line without separator: %s", r)
	}
	r = n.fails("a\n", "produce", "missing-topic", "--timeout", "10s")
	if !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("produce to a missing topic: %s", r)
	}
	r = n.fails("a\n", "produce", "x", "--partition", "5", "--timeout", "10s")
	if !strings.Contains(r.stderr, "partition") {
		t.Errorf("produce to a missing partition: %s", r)
	}
	// acks=1 and acks=0 need the non-idempotent producer; both must work.
	n.ok("one\n", "produce", "x", "--acks", "1")
	n.ok("zero\n", "produce", "x", "--acks", "0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := n.ok("", "consume", "x", "--from-beginning")
		if out == "one\nzero\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after acks=1 and acks=0 produces, topic holds %q", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
