package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupTimeout bounds every wait for a group to settle: joins, rebalances
// and the 5s autocommit all fit well inside it.
const groupTimeout = 60 * time.Second

// eventually polls cond until it holds or groupTimeout passes; cond
// returns a description of what it saw, for the failure message.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(groupTimeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last saw:\n%s", what, groupTimeout, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// member is a running `sluice consume --group --follow` whose output
// lines are collected as they are printed.
type member struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr bytes.Buffer
	done   chan struct{}
}

func (n *node) startMember(topic, group string, extra ...string) *member {
	n.t.Helper()
	args := append([]string{"consume", topic, "--group", group, "--follow", "--format", `%p %o %v\n`, "--brokers", n.addr}, extra...)
	m := &member{t: n.t, cmd: exec.Command(sluiceBin, args...), done: make(chan struct{})}
	m.cmd.Env = cleanEnv()
	m.cmd.Stderr = &m.stderr
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			m.mu.Lock()
			m.lines = append(m.lines, sc.Text())
			m.mu.Unlock()
		}
	}()
	n.t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			m.cmd.Process.Kill()
		}
		m.cmd.Wait()
	})
	return m
}

func (m *member) printed() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// interrupt sends SIGINT, as a user's Ctrl-C, and expects a clean exit.
func (m *member) interrupt() {
	m.t.Helper()
	m.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-m.done:
	case <-time.After(groupTimeout):
		m.cmd.Process.Kill()
		m.t.Fatalf("consume --group did not exit within %s of SIGINT", groupTimeout)
	}
	if err := m.cmd.Wait(); err != nil {
		m.t.Fatalf("consume --group after SIGINT: %v; stderr:\n%s", err, m.stderr.String())
	}
}

// values returns the record values of `%p %o %v` lines.
func values(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		out = append(out, f[len(f)-1])
	}
	return out
}

// partitionsOf returns the partitions that `%p %o %v` lines came from.
func partitionsOf(lines []string) map[string]bool {
	out := map[string]bool{}
	for _, l := range lines {
		out[strings.SplitN(l, " ", 2)[0]] = true
	}
	return out
}

// groupView is `sluice group describe` parsed.
type groupView struct {
	state   string
	members map[string]string // member id -> partitions column
	rows    map[string][]string
	raw     string
}

var describeRow = regexp.MustCompile(`^(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$`)

// row returns committed, log end, lag and owner of topic/partition.
func (g groupView) row(topic string, p int) []string {
	return g.rows[topic+"/"+strconv.Itoa(p)]
}

// describeGroup runs `group describe`; a failure, such as a group that
// does not exist yet, gives a view with no state, so callers can poll.
func (n *node) describeGroup(name string) groupView {
	n.t.Helper()
	r := sluice(n.t, "", "group", "describe", name, "--brokers", n.addr)
	out := r.stdout
	g := groupView{members: map[string]string{}, rows: map[string][]string{}, raw: r.String()}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "State:"):
			g.state = strings.TrimSpace(strings.TrimPrefix(line, "State:"))
		case strings.HasPrefix(line, "MEMBER"), strings.HasPrefix(line, "TOPIC"):
			section = strings.Fields(line)[0]
		case line == "":
		case section == "MEMBER":
			f := strings.Fields(line)
			g.members[f[0]] = f[len(f)-1]
		case section == "TOPIC":
			if m := describeRow.FindStringSubmatch(line); m != nil {
				g.rows[m[1]+"/"+m[2]] = m[3:]
			}
		}
	}
	return g
}

// ownsAll reports whether every member owns at least one partition and
// together they own exactly partitions 0..n-1 of topic.
func (g groupView) ownsAll(topic string, n int) bool {
	owned := map[int]bool{}
	for _, parts := range g.members {
		p, ok := strings.CutPrefix(parts, topic+":")
		if !ok {
			return false
		}
		for _, s := range strings.Split(p, ",") {
			i, _ := strconv.Atoi(s)
			if owned[i] {
				return false
			}
			owned[i] = true
		}
	}
	return len(owned) == n
}

// keyedLines returns n lines "key|prefix-i" and how many land in each of
// the partitions, by Kafka's partitioner.
func keyedLines(prefix string, n, partitions int) (string, []int) {
	var b strings.Builder
	counts := make([]int, partitions)
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		counts[kafkaPartition(key, partitions)]++
		fmt.Fprintf(&b, "%s|%s-%d\n", key, prefix, i)
	}
	return b.String(), counts
}

func checkOnce(t *testing.T, got []string, prefixes map[string]int) {
	t.Helper()
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	want := 0
	for prefix, n := range prefixes {
		want += n
		for i := range n {
			if c := seen[fmt.Sprintf("%s-%d", prefix, i)]; c != 1 {
				t.Errorf("record %s-%d printed %d times", prefix, i, c)
			}
		}
	}
	if len(got) != want {
		t.Errorf("printed %d records, want %d", len(got), want)
	}
}

// Two members split a topic, each record printed by exactly one; when one
// is interrupted the other takes over its partitions, from where it left
// off.
func TestGroupMembersSplitAndTakeOver(t *testing.T) {
	n := startNode(t, t.TempDir())
	const parts = 4
	n.ok("", "topic", "create", "events", "--partitions", strconv.Itoa(parts))
	a := n.startMember("events", "split")
	b := n.startMember("events", "split")
	var view groupView
	eventually(t, "both members own partitions", func() (bool, string) {
		view = n.describeGroup("split")
		return view.state == "Stable" && len(view.members) == 2 && view.ownsAll("events", parts), view.raw
	})

	in, counts := keyedLines("first", 200, parts)
	n.ok(in, "produce", "events", "--key-separator", "|")
	eventually(t, "all 200 records printed", func() (bool, string) {
		got := len(a.printed()) + len(b.printed())
		return got >= 200, fmt.Sprintf("%d printed", got)
	})
	checkOnce(t, values(append(a.printed(), b.printed()...)), map[string]int{"first": 200})
	pa, pb := partitionsOf(a.printed()), partitionsOf(b.printed())
	if len(pa) == 0 || len(pb) == 0 {
		t.Errorf("a member printed nothing: a from %v, b from %v", pa, pb)
	}
	for p := range pa {
		if pb[p] {
			t.Errorf("both members printed records of partition %s", p)
		}
	}
	// Commits reach the group within the autocommit interval, and lag
	// follows: committed = log end = records in the partition.
	eventually(t, "committed offsets at the log end", func() (bool, string) {
		view = n.describeGroup("split")
		for p := range parts {
			c := strconv.Itoa(counts[p])
			if r := view.row("events", p); r == nil || r[0] != c || r[1] != c || r[2] != "0" || r[3] == "-" {
				return false, view.raw
			}
		}
		return true, ""
	})

	a.interrupt()
	eventually(t, "the remaining member owns every partition", func() (bool, string) {
		view = n.describeGroup("split")
		return view.state == "Stable" && len(view.members) == 1 && view.ownsAll("events", parts), view.raw
	})
	in, _ = keyedLines("second", 100, parts)
	n.ok(in, "produce", "events", "--key-separator", "|")
	eventually(t, "the remaining member printed the new records", func() (bool, string) {
		got := len(a.printed()) + len(b.printed())
		return got >= 300, fmt.Sprintf("%d printed", got)
	})
	b.interrupt()
	checkOnce(t, values(append(a.printed(), b.printed()...)), map[string]int{"first": 200, "second": 100})
	if got := partitionsOf(b.printed()); len(got) != parts {
		t.Errorf("after the takeover the remaining member printed from partitions %v, want all %d", got, parts)
	}
}

// A member started again resumes right after the last record it printed,
// whether it stopped at --max, at the end or on SIGINT.
func TestGroupMemberResumes(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "r")
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "a%d\n", i)
	}
	n.ok(in.String(), "produce", "r")

	// A new group without --from-beginning starts at the end...
	if got := n.ok("", "consume", "r", "--group", "late"); got != "" {
		t.Errorf("a new group starting at the end printed %q", got)
	}
	// ...of the moment it was created, not of its next start.
	n.ok("b0\n", "produce", "r")
	if got := n.ok("", "consume", "r", "--group", "late"); got != "b0\n" {
		t.Errorf("the group's second run printed %q, want the record written after its first", got)
	}

	if got := n.ok("", "consume", "r", "--group", "g", "--from-beginning", "--max", "4"); got != "a0\na1\na2\na3\n" {
		t.Errorf("first 4: %q", got)
	}
	if got := n.ok("", "consume", "r", "--group", "g", "--from-beginning"); got != "a4\na5\na6\na7\na8\na9\nb0\n" {
		t.Errorf("the rest: %q", got)
	}
	if got := n.ok("", "consume", "r", "--group", "g"); got != "" {
		t.Errorf("a caught-up group printed %q", got)
	}

	m := n.startMember("r", "g")
	eventually(t, "member joined", func() (bool, string) {
		v := n.describeGroup("g")
		return v.state == "Stable" && len(v.members) == 1 && v.ownsAll("r", 1), v.raw
	})
	n.ok("c0\nc1\n", "produce", "r")
	eventually(t, "c0 and c1 printed", func() (bool, string) {
		return len(m.printed()) >= 2, strings.Join(m.printed(), "\n")
	})
	m.interrupt() // the exit commit covers what autocommit has not
	n.ok("d0\n", "produce", "r")
	m2 := n.startMember("r", "g")
	n.ok("d1\n", "produce", "r")
	eventually(t, "the restarted member printed d0 and d1", func() (bool, string) {
		return len(m2.printed()) >= 2, strings.Join(m2.printed(), "\n")
	})
	m2.interrupt()
	if got, want := strings.Join(values(m.printed()), ","), "c0,c1"; got != want {
		t.Errorf("first run printed %s, want %s", got, want)
	}
	if got, want := strings.Join(values(m2.printed()), ","), "d0,d1"; got != want {
		t.Errorf("restarted run printed %s, want %s", got, want)
	}
	v := n.describeGroup("g")
	if r := v.row("r", 0); r == nil || r[0] != "15" || r[1] != "15" || r[2] != "0" || r[3] != "-" {
		t.Errorf("after both runs, want committed 15, log end 15, lag 0, no owner:\n%s", v.raw)
	}
}

// list, describe, reset and delete, checked against what was produced and
// consumed.
func TestGroupListDescribeResetDelete(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "t", "--partitions", "2")
	n.ok(strings.Repeat("x\n", 6), "produce", "t", "--partition", "0")
	n.ok(strings.Repeat("y\n", 4), "produce", "t", "--partition", "1")
	if got := n.ok("", "consume", "t", "--group", "rs", "--from-beginning"); strings.Count(got, "\n") != 10 {
		t.Fatalf("consume --group printed %q, want 10 records", got)
	}
	// Records written after this instant have later timestamps than all
	// before it; wait out the millisecond so that none share it.
	before := time.Now().UnixMilli()
	for time.Now().UnixMilli() <= before {
	}
	at := before + 1
	n.ok(strings.Repeat("z\n", 3), "produce", "t", "--partition", "1")

	list := n.ok("", "group", "list")
	if !regexp.MustCompile(`(?m)^GROUP\s+STATE\s+PROTOCOL-TYPE\s+MEMBERS$`).MatchString(list) ||
		// An emptied group keeps its protocol type ("consumer"); a group
		// that only ever had offsets committed has none ("-").
		!regexp.MustCompile(`(?m)^rs\s+Empty\s+(consumer|-)\s+0$`).MatchString(list) {
		t.Errorf("group list:\n%s", list)
	}
	expect := func(what string, p0, p1 []string) {
		t.Helper()
		v := n.describeGroup("rs")
		if got := v.row("t", 0); strings.Join(got, " ") != strings.Join(p0, " ") {
			t.Errorf("%s: partition 0 is %v, want %v:\n%s", what, got, p0, v.raw)
		}
		if got := v.row("t", 1); strings.Join(got, " ") != strings.Join(p1, " ") {
			t.Errorf("%s: partition 1 is %v, want %v:\n%s", what, got, p1, v.raw)
		}
	}
	// committed, log end, lag, owner
	expect("after consuming", []string{"6", "6", "0", "-"}, []string{"4", "7", "3", "-"})

	out := n.ok("", "group", "reset", "rs", "--topic", "t", "--to-earliest", "--dry-run")
	if !regexp.MustCompile(`(?m)^t\s+0\s+6\s+→ 0$`).MatchString(out) || !regexp.MustCompile(`(?m)^t\s+1\s+4\s+→ 0$`).MatchString(out) ||
		!strings.Contains(out, "dry run") {
		t.Errorf("reset --dry-run output:\n%s", out)
	}
	expect("after a dry run", []string{"6", "6", "0", "-"}, []string{"4", "7", "3", "-"})

	n.ok("", "group", "reset", "rs", "--topic", "t", "--to-earliest")
	expect("to earliest", []string{"0", "6", "6", "-"}, []string{"0", "7", "7", "-"})
	n.ok("", "group", "reset", "rs", "--topic", "t", "--partition", "1", "--to-offset", "2")
	expect("partition 1 to offset 2", []string{"0", "6", "6", "-"}, []string{"2", "7", "5", "-"})
	n.ok("", "group", "reset", "rs", "--topic", "t", "--partition", "0", "--to-offset", "100")
	expect("partition 0 past its end", []string{"6", "6", "0", "-"}, []string{"2", "7", "5", "-"})
	n.ok("", "group", "reset", "rs", "--topic", "t", "--to-earliest")
	n.ok("", "group", "reset", "rs", "--topic", "t", "--to-latest")
	expect("to latest", []string{"6", "6", "0", "-"}, []string{"7", "7", "0", "-"})
	n.ok("", "group", "reset", "rs", "--topic", "t", "--to-time", strconv.FormatInt(at, 10))
	// Partition 0 has nothing that late, so it moves to its end.
	expect("to time (ms)", []string{"6", "6", "0", "-"}, []string{"4", "7", "3", "-"})
	n.ok("", "group", "reset", "rs", "--topic", "t", "--to-earliest")
	n.ok("", "group", "reset", "rs", "--topic", "t", "--to-time", time.UnixMilli(at).UTC().Format(time.RFC3339Nano))
	expect("to time (RFC 3339)", []string{"6", "6", "0", "-"}, []string{"4", "7", "3", "-"})
	// The group reads from where it was reset to.
	if got := n.ok("", "consume", "t", "--group", "rs"); got != "z\nz\nz\n" {
		t.Errorf("after the reset the group printed %q, want the 3 records after the time", got)
	}

	// With a member, reset and delete are refused.
	m := n.startMember("t", "rs")
	eventually(t, "member joined", func() (bool, string) {
		v := n.describeGroup("rs")
		return v.state == "Stable" && len(v.members) == 1 && v.ownsAll("t", 2), v.raw
	})
	list = n.ok("", "group", "list")
	if !regexp.MustCompile(`(?m)^rs\s+Stable\s+consumer\s+1$`).MatchString(list) {
		t.Errorf("group list with a member:\n%s", list)
	}
	r := n.fails("", "group", "reset", "rs", "--topic", "t", "--to-earliest")
	if r.code != 1 || !strings.Contains(r.stderr, "active members") {
		t.Errorf("reset of an active group: %s", r)
	}
	r = n.fails("", "group", "delete", "rs")
	if !strings.Contains(r.stderr, "NON_EMPTY_GROUP") {
		t.Errorf("delete of an active group: %s", r)
	}
	m.interrupt()
	expect("after the member left", []string{"6", "6", "0", "-"}, []string{"7", "7", "0", "-"})

	if out := n.ok("", "group", "delete", "rs"); !strings.Contains(out, "deleted group rs") {
		t.Errorf("delete output %q", out)
	}
	if list := n.ok("", "group", "list"); regexp.MustCompile(`(?m)^rs\s`).MatchString(list) {
		t.Errorf("deleted group still listed:\n%s", list)
	}
	r = n.fails("", "group", "describe", "rs")
	if !strings.Contains(r.stderr, "no such group") {
		t.Errorf("describe of a deleted group: %s", r)
	}
	r = n.fails("", "group", "reset", "rs", "--topic", "nope", "--to-latest")
	if !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("reset for a missing topic: %s", r)
	}
}

// Flag mistakes are usage errors (exit 2), found before any connection.
func TestGroupUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "t", "--group", "g", "--partition", "1"}, "--group and --partition"},
		{[]string{"consume", "t", "--group", "g", "--offset", "3"}, "--group and --offset"},
		{[]string{"consume", "t", "--group", ""}, "must not be empty"},
		{[]string{"consume", "t", "--group", "g", "--balancers", "fastest"}, "unknown strategy"},
		{[]string{"consume", "t", "--balancers", "range"}, "only with --group"},
		{[]string{"group", "reset", "g", "--to-latest"}, "--topic is required"},
		{[]string{"group", "reset", "g", "--topic", "t"}, "say where"},
		{[]string{"group", "reset", "g", "--topic", "t", "--to-latest", "--to-offset", "3"}, "give one"},
		{[]string{"group", "reset", "g", "--topic", "t", "--to-offset", "-1"}, "must not be negative"},
		{[]string{"group", "reset", "g", "--topic", "t", "--to-time", "yesterday"}, "RFC 3339"},
		{[]string{"group", "reset", "g", "--topic", "t", "--to-latest", "--partition", "-2"}, "must not be negative"},
		{[]string{"group", "describe"}, "missing NAME"},
		{[]string{"group", "delete", "a", "b"}, "unexpected argument"},
		{[]string{"group", "list", "--bogus"}, "unknown flag"},
	} {
		r := sluice(t, "", append(tc.args, "--brokers", "127.0.0.1:1")...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sluice %s: want exit 2 mentioning %q, got %s", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}

func TestParseResetTime(t *testing.T) {
	for in, want := range map[string]int64{
		"1700000000123":               1700000000123,
		"0":                           0,
		"2026-01-02T15:04:05Z":        time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC).UnixMilli(),
		"2026-01-02T15:04:05.5+01:00": time.Date(2026, 1, 2, 14, 4, 5, 5e8, time.UTC).UnixMilli(),
	} {
		if got, err := parseResetTime(in); err != nil || got != want {
			t.Errorf("parseResetTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5", "2026-01-02", "soon"} {
		if got, err := parseResetTime(in); err == nil {
			t.Errorf("parseResetTime(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseBalancers(t *testing.T) {
	got, err := parseBalancers(defaultBalancers)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range got {
		names = append(names, b.ProtocolName())
	}
	if strings.Join(names, ",") != "cooperative-sticky,range,roundrobin" {
		t.Errorf("default balancers %v", names)
	}
	for _, bad := range [][]string{nil, {"range", "Range"}, {"sticky", "bogus"}} {
		if _, err := parseBalancers(bad); err == nil {
			t.Errorf("parseBalancers(%q) accepted", bad)
		}
	}
}

// A member that offers only eager strategies, as librdkafka and kcat do by
// default (range,roundrobin), can share a group with sluice members: the
// group switches to range while it is there and back to
// cooperative-sticky after it leaves.
func TestGroupWithEagerMember(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "mixed", "--partitions", "4")
	s := n.startMember("mixed", "mixed")
	eventually(t, "sluice member joined", func() (bool, string) {
		v := n.describeGroup("mixed")
		return v.state == "Stable" && len(v.members) == 1 && v.ownsAll("mixed", 4) && strings.Contains(v.raw, "consumer/cooperative-sticky"), v.raw
	})

	eager, err := kgo.NewClient(kgo.SeedBrokers(n.addr), kgo.ClientID("kcat-like"),
		kgo.ConsumerGroup("mixed"), kgo.ConsumeTopics("mixed"),
		kgo.Balancers(kgo.RangeBalancer(), kgo.RoundRobinBalancer()))
	if err != nil {
		t.Fatal(err)
	}
	defer eager.Close()
	// The eager member only joins while it polls.
	pollCtx, stopPolling := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pollCtx.Err() == nil {
			eager.PollFetches(pollCtx)
		}
	}()
	eventually(t, "the group runs range with both members owning partitions", func() (bool, string) {
		v := n.describeGroup("mixed")
		return v.state == "Stable" && len(v.members) == 2 && v.ownsAll("mixed", 4) && strings.Contains(v.raw, "consumer/range"), v.raw
	})
	stopPolling()
	<-polled
	eager.Close()
	eventually(t, "back to cooperative-sticky with the sluice member owning everything", func() (bool, string) {
		v := n.describeGroup("mixed")
		return v.state == "Stable" && len(v.members) == 1 && v.ownsAll("mixed", 4) && strings.Contains(v.raw, "consumer/cooperative-sticky"), v.raw
	})
	in, _ := keyedLines("after", 40, 4)
	n.ok(in, "produce", "mixed", "--key-separator", "|")
	eventually(t, "sluice member printed the records", func() (bool, string) {
		return len(s.printed()) >= 40, strings.Join(s.printed(), "\n")
	})
	s.interrupt()
	checkOnce(t, values(s.printed()), map[string]int{"after": 40})
}

// A member joining while records keep arriving takes partitions over from
// the committed offsets the other member wrote when it gave them up: no
// record is printed twice or skipped.
func TestGroupRebalanceWhileProducing(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.ok("", "topic", "create", "busy", "--partitions", "4")
	a := n.startMember("busy", "busy")
	eventually(t, "first member owns everything", func() (bool, string) {
		v := n.describeGroup("busy")
		return v.state == "Stable" && len(v.members) == 1 && v.ownsAll("busy", 4), v.raw
	})
	// Batches go in before the second member starts, while it joins and
	// the first hands partitions over, and after it owns them.
	const per = 50
	batches, joinedAt := 0, -1
	var b *member
	deadline := time.Now().Add(groupTimeout)
	for joinedAt < 0 || batches < joinedAt+4 {
		if batches == 4 {
			b = n.startMember("busy", "busy")
		}
		var in strings.Builder
		for j := range per {
			fmt.Fprintf(&in, "k%d|rec-%d\n", j, batches*per+j)
		}
		n.ok(in.String(), "produce", "busy", "--key-separator", "|")
		batches++
		if b != nil && joinedAt < 0 {
			if v := n.describeGroup("busy"); v.state == "Stable" && len(v.members) == 2 && v.ownsAll("busy", 4) {
				joinedAt = batches
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second member did not get partitions within %s", groupTimeout)
		}
	}
	eventually(t, "everything printed", func() (bool, string) {
		got := len(a.printed()) + len(b.printed())
		return got >= batches*per, fmt.Sprintf("%d of %d printed", got, batches*per)
	})
	a.interrupt()
	b.interrupt()
	checkOnce(t, values(append(a.printed(), b.printed()...)), map[string]int{"rec": batches * per})
	t.Logf("%d batches; the second member owned partitions after batch %d", batches, joinedAt)
	if len(b.printed()) == 0 {
		t.Errorf("the member that joined printed nothing")
	}
}
