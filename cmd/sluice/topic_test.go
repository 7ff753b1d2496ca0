package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestTopicLifecycle(t *testing.T) {
	n := startNode(t, t.TempDir())

	out := n.ok("", "topic", "create", "orders", "--partitions", "3", "--retention", "7d", "--config", "cleanup.policy=compact")
	if !strings.Contains(out, "created topic orders") {
		t.Errorf("create output %q", out)
	}
	n.ok("", "topic", "create", "audit")

	list := n.ok("", "topic", "list")
	if !regexp.MustCompile(`(?m)^audit\s+1$`).MatchString(list) || !regexp.MustCompile(`(?m)^orders\s+3$`).MatchString(list) {
		t.Errorf("topic list:\n%s\nwant audit with 1 partition and orders with 3", list)
	}
	if strings.Index(list, "audit") > strings.Index(list, "orders") {
		t.Errorf("topic list not sorted:\n%s", list)
	}
	// SLUICE_BROKERS stands in for --brokers.
	if r := sluiceEnv(t, []string{"SLUICE_BROKERS=" + n.addr}, "", "topic", "list"); r.code != 0 || r.stdout != list {
		t.Errorf("topic list with SLUICE_BROKERS: %s\nwant stdout:\n%s", r, list)
	}

	desc := n.ok("", "topic", "describe", "orders")
	for _, want := range []string{
		`(?m)^Partitions:\s+3$`,
		`(?m)^0\s+1\s+0\s+1\s+1\s+0\s+0$`, // partition, leader, epoch, replicas, isr, log start, high watermark
		`(?m)^1\s+1\s+0\s+1\s+1\s+0\s+0$`,
		`(?m)^2\s+1\s+0\s+1\s+1\s+0\s+0$`,
		`(?m)^retention\.ms\s+604800000\s+topic$`,
		`(?m)^cleanup\.policy\s+compact\s+topic$`,
		`(?m)^segment\.bytes\s+\d+\s+default$`,
	} {
		if !regexp.MustCompile(want).MatchString(desc) {
			t.Errorf("describe output lacks %s:\n%s", want, desc)
		}
	}

	r := n.fails("", "topic", "create", "orders")
	if !strings.Contains(r.stderr, "TOPIC_ALREADY_EXISTS") {
		t.Errorf("creating an existing topic: %s", r)
	}
	r = n.fails("", "topic", "create", "bad", "--config", "retention.ms=soon")
	if !strings.Contains(r.stderr, "retention.ms") {
		t.Errorf("bad topic config should name the key: %s", r)
	}

	n.ok("", "topic", "delete", "orders")
	list = n.ok("", "topic", "list")
	if strings.Contains(list, "orders") {
		t.Errorf("orders still listed after delete:\n%s", list)
	}
	r = n.fails("", "topic", "describe", "orders")
	if !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("describing a deleted topic: %s", r)
	}
	r = n.fails("", "topic", "delete", "orders")
	if !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("deleting a deleted topic: %s", r)
	}
}

// The describe offsets columns must follow the data.
func TestTopicDescribeOffsets(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "t", "--partitions", "2")
	n.ok(strings.Repeat("x\n", 5), "produce", "t", "--partition", "1")
	desc := n.ok("", "topic", "describe", "t")
	if !regexp.MustCompile(`(?m)^0\s+1\s+0\s+1\s+1\s+0\s+0$`).MatchString(desc) ||
		!regexp.MustCompile(`(?m)^1\s+1\s+0\s+1\s+1\s+0\s+5$`).MatchString(desc) {
		t.Errorf("describe after 5 records in partition 1:\n%s", desc)
	}
}
