package kafka

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fastGroups makes the first rebalance of a group start at once.
func fastGroups() envOption {
	return withServerConfig(func(c *Config) { c.GroupOptions.InitialRebalanceDelay = -1 })
}

// groupMember is a kgo consumer-group member that commits synchronously
// after every poll, with rebalances blocked between poll and commit: every
// record it reports was committed before its partition could move.
type groupMember struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// delivery is one record as a member received it.
type delivery struct {
	member    int
	partition int32
	offset    int64
}

type deliveries struct {
	mu  sync.Mutex
	all []delivery
}

func (d *deliveries) add(x delivery) {
	d.mu.Lock()
	d.all = append(d.all, x)
	d.mu.Unlock()
}

func (d *deliveries) snapshot() []delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]delivery(nil), d.all...)
}

func startMember(t *testing.T, e *testEnv, id int, group, topic string, bal kgo.GroupBalancer, got *deliveries) *groupMember {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(bal), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.ClientID(fmt.Sprint("member-", id)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			recs := fs.Records()
			if len(recs) > 0 {
				if err := cl.CommitRecords(context.Background(), recs...); err != nil {
					t.Errorf("member %d: commit: %v", id, err)
				}
				for _, r := range recs {
					got.add(delivery{id, r.Partition, r.Offset})
				}
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m.close)
	return m
}

// close stops polling, then leaves the group cleanly.
func (m *groupMember) close() {
	m.once.Do(func() {
		m.cancel()
		<-m.done
		m.cl.Close()
	})
}

// assignments returns each member's partitions of topic, by client id, once
// the group is Stable with n members.
func stableAssignments(t *testing.T, adm *kadm.Client, group, topic string, n int) map[string][]int32 {
	t.Helper()
	var out map[string][]int32
	eventually(t, fmt.Sprintf("group %s stable with %d members", group, n), func() bool {
		dg, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g := dg[group]
		if g.State != "Stable" || len(g.Members) != n {
			return false
		}
		out = map[string][]int32{}
		for _, m := range g.Members {
			ca, ok := m.Assigned.AsConsumer()
			if !ok {
				return false
			}
			for _, at := range ca.Topics {
				if at.Topic == topic {
					out[m.ClientID+"/"+m.MemberID] = append(out[m.ClientID+"/"+m.MemberID], at.Partitions...)
				}
			}
		}
		return true
	})
	return out
}

// checkCover fails unless every partition is assigned exactly once.
func checkCover(t *testing.T, as map[string][]int32, partitions int32) {
	t.Helper()
	seen := map[int32]int{}
	for _, ps := range as {
		for _, p := range ps {
			seen[p]++
		}
	}
	for p := range partitions {
		if seen[p] != 1 {
			t.Fatalf("partition %d assigned %d times: %v", p, seen[p], as)
		}
	}
	if len(seen) != int(partitions) {
		t.Fatalf("assignment names unknown partitions: %v", as)
	}
}

func produceN(t *testing.T, cl *kgo.Client, topic string, partitions int32, perPartition int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range partitions {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestConsumerGroupHandoff runs three kgo members over six partitions with
// each assignor: every partition goes to exactly one member; when one
// member leaves, its partitions move to the others; and since every member
// commits what it received before a rebalance may take it away, no record
// is delivered twice.
func TestConsumerGroupHandoff(t *testing.T) {
	for _, tc := range []struct {
		name string
		bal  kgo.GroupBalancer
	}{
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
		{"range", kgo.RangeBalancer()},
		{"roundrobin", kgo.RoundRobinBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fastGroups(), withServerConfig(func(c *Config) { c.GroupOptions.InitialRebalanceDelay = 200 * time.Millisecond }))
			const parts, per = 6, 40
			e.createTopic("t", parts, nil)
			producer := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
			produceN(t, producer, "t", parts, per)
			adm := e.admin()

			got := &deliveries{}
			var members []*groupMember
			for i := range 3 {
				members = append(members, startMember(t, e, i, "g", "t", tc.bal, got))
			}
			as := stableAssignments(t, adm, "g", "t", 3)
			checkCover(t, as, parts)
			for who, ps := range as {
				if len(ps) != 2 {
					t.Fatalf("%s got %v; want 2 partitions each", who, ps)
				}
			}
			eventually(t, "first round consumed", func() bool { return len(got.snapshot()) >= parts*per })

			// Which partitions member 0 had: they must move.
			var owned0 []int32
			for who, ps := range as {
				if strings.HasPrefix(who, "member-0/") {
					owned0 = ps
				}
			}
			members[0].close()
			as = stableAssignments(t, adm, "g", "t", 2)
			checkCover(t, as, parts)

			produceN(t, producer, "t", parts, per)
			eventually(t, "second round consumed", func() bool { return len(got.snapshot()) >= 2*parts*per })

			count := map[[2]int64]int{}
			moved := 0
			for _, d := range got.snapshot() {
				count[[2]int64{int64(d.partition), d.offset}]++
				for _, p := range owned0 {
					if d.partition == p && d.member != 0 {
						moved++
					}
				}
			}
			for k, n := range count {
				if n != 1 {
					t.Fatalf("partition %d offset %d delivered %d times", k[0], k[1], n)
				}
			}
			if len(count) != 2*parts*per {
				t.Fatalf("%d distinct records delivered, want %d", len(count), 2*parts*per)
			}
			if moved < len(owned0)*per {
				t.Fatalf("member 0's partitions %v: only %d records went to the others", owned0, moved)
			}

			// Committed offsets, through OffsetFetch, and the lag gauge.
			offs, err := adm.FetchOffsets(testCtx(t), "g")
			if err != nil {
				t.Fatal(err)
			}
			for p := range int32(parts) {
				if o, ok := offs.Lookup("t", p); !ok || o.At != 2*per || o.Err != nil {
					t.Fatalf("partition %d committed %+v", p, o)
				}
			}
			lag := gatherGauges(t, e.reg, "sluice_group_lag")
			if len(lag) != parts {
				t.Fatalf("lag series: %v", lag)
			}
			for k, v := range lag {
				if v != 0 {
					t.Fatalf("%s = %v, want 0", k, v)
				}
			}
		})
	}
}

// TestLagGauge commits from outside any group and checks the lag series.
func TestLagGauge(t *testing.T) {
	e := newEnv(t)
	e.createTopic("t", 2, nil)
	produceN(t, e.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), "t", 2, 10)
	adm := e.admin()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 3, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "t", Partition: 1, At: 10, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(testCtx(t), "outside", offs); err != nil {
		t.Fatal(err)
	}
	got := gatherGauges(t, e.reg, "sluice_group_lag", "sluice_group_committed_offset")
	want := map[string]float64{
		"sluice_group_committed_offset{group=outside,partition=0,topic=t}": 3,
		"sluice_group_committed_offset{group=outside,partition=1,topic=t}": 10,
		"sluice_group_lag{group=outside,partition=0,topic=t}":              7,
		"sluice_group_lag{group=outside,partition=1,topic=t}":              0,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("gauges %v, want %v", got, want)
	}
	// ListGroups and DescribeGroups see the offsets-only group as Empty;
	// DeleteGroups removes it and its offsets.
	lg, err := adm.ListGroups(testCtx(t))
	if err != nil || lg["outside"].State != "Empty" {
		t.Fatalf("list: %+v %v", lg, err)
	}
	if _, err := adm.DeleteGroup(testCtx(t), "outside"); err != nil {
		t.Fatal(err)
	}
	if n := len(gatherGauges(t, e.reg, "sluice_group_lag")); n != 0 {
		t.Fatalf("%d lag series after delete", n)
	}
}

// rawJoin does the two-step JoinGroup v5 for a new member and returns the
// answer of the second step.
func rawJoin(t *testing.T, rc *rawConn, group string) *kmsg.JoinGroupResponse {
	t.Helper()
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 5
	join.Group, join.ProtocolType = group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{"t"}
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	r := rc.do(join).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		t.Fatalf("first join: %s %q", errorName(r.ErrorCode), r.MemberID)
	}
	join.MemberID = r.MemberID
	r = rc.do(join).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != 0 || r.LeaderID != r.MemberID || len(r.Members) != 1 {
		t.Fatalf("second join: %+v", r)
	}
	return r
}

// TestGroupErrors sends bad group requests with raw kmsg and checks each
// Kafka error code, all on one connection that must stay usable.
func TestGroupErrors(t *testing.T) {
	e := newEnv(t, fastGroups())
	e.createTopic("t", 2, nil)
	rc := e.raw()
	jr := rawJoin(t, rc, "g")
	gen, member := jr.Generation, jr.MemberID

	sync := func(gen int32, assignment []byte) int16 {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Version = 5
		req.Group, req.MemberID, req.Generation = "g", member, gen
		req.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: assignment}}
		return rc.do(req).(*kmsg.SyncGroupResponse).ErrorCode
	}
	heartbeat := func(group string, gen int32) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = 4
		req.Group, req.MemberID, req.Generation = group, member, gen
		return rc.do(req).(*kmsg.HeartbeatResponse).ErrorCode
	}
	commit := func(group string, gen int32, topic string, partitions ...int32) []int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 8
		req.Group, req.MemberID, req.Generation = group, member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for _, p := range partitions {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, 1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		var codes []int16
		for _, p := range rc.do(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions {
			codes = append(codes, p.ErrorCode)
		}
		return codes
	}
	want := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		var code int16
		if want != nil {
			code = want.Code
		}
		if got != code {
			t.Fatalf("%s: got %s, want %s", what, errorName(got), errorName(code))
		}
	}

	ca := kmsg.NewConsumerMemberAssignment()
	ca.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{0, 1}}}
	want("stale generation sync", sync(gen-1, ca.AppendTo(nil)), kerr.IllegalGeneration)
	want("garbage assignment", sync(gen, []byte{0, 0, 0xff, 0xff, 0xff}), kerr.InconsistentGroupProtocol)
	// The refused assignment started a rebalance; rejoin and sync properly.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 5
	join.Group, join.ProtocolType, join.MemberID = "g", "consumer", member
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0}}}
	jr = rc.do(join).(*kmsg.JoinGroupResponse)
	want("rejoin", jr.ErrorCode, nil)
	gen = jr.Generation
	want("good sync", sync(gen, ca.AppendTo(nil)), nil)

	want("heartbeat", heartbeat("g", gen), nil)
	want("stale heartbeat", heartbeat("g", gen-1), kerr.IllegalGeneration)
	want("unknown group heartbeat", heartbeat("nope", gen), kerr.UnknownMemberID)
	want("stale commit", commit("g", gen-1, "t", 0)[0], kerr.IllegalGeneration)
	want("invalid group commit", commit("", gen, "t", 0)[0], kerr.InvalidGroupID)
	codes := commit("g", gen, "t", 0, 7)
	want("commit known partition", codes[0], nil)
	want("commit unknown partition", codes[1], kerr.UnknownTopicOrPartition)
	want("commit unknown topic", commit("g", gen, "nosuch", 0)[0], kerr.UnknownTopicOrPartition)

	badJoin := kmsg.NewPtrJoinGroupRequest()
	badJoin.Version = 5
	badJoin.ProtocolType, badJoin.SessionTimeoutMillis = "consumer", 10000
	badJoin.Protocols = join.Protocols
	want("empty group join", rc.do(badJoin).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidGroupID)

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Version = 6
	dg.Groups = []string{"nope", "g"}
	dr := rc.do(dg).(*kmsg.DescribeGroupsResponse)
	want("describe unknown", dr.Groups[0].ErrorCode, kerr.GroupIDNotFound)
	if g := dr.Groups[1]; g.ErrorCode != 0 || g.State != "Stable" || len(g.Members) != 1 || g.Protocol != "range" {
		t.Fatalf("describe g: %+v", g)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version = 2
	del.Groups = []string{"nope", "g"}
	delr := rc.do(del).(*kmsg.DeleteGroupsResponse)
	want("delete unknown", delr.Groups[0].ErrorCode, kerr.GroupIDNotFound)
	want("delete non-empty", delr.Groups[1].ErrorCode, kerr.NonEmptyGroup)

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 8
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}, {Group: "nope", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
	fr := rc.do(fetch).(*kmsg.OffsetFetchResponse)
	if len(fr.Groups) != 2 || len(fr.Groups[0].Topics) != 1 || fr.Groups[0].Topics[0].Partitions[0].Offset != 1 ||
		fr.Groups[1].Topics[0].Partitions[0].Offset != -1 || fr.Groups[1].Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset fetch: %+v", fr.Groups)
	}

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 3
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}, {MemberID: "ghost"}}
	lr := rc.do(leave).(*kmsg.LeaveGroupResponse)
	want("leave", lr.Members[0].ErrorCode, nil)
	want("leave ghost", lr.Members[1].ErrorCode, kerr.UnknownMemberID)
	want("heartbeat after leave", heartbeat("g", gen), kerr.UnknownMemberID)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 4
	fc.CoordinatorKeys = []string{"a", "b"}
	fcr := rc.do(fc).(*kmsg.FindCoordinatorResponse)
	if len(fcr.Coordinators) != 2 || fcr.Coordinators[1].NodeID != 1 || fcr.Coordinators[1].Port == 0 {
		t.Fatalf("find coordinator: %+v", fcr)
	}

	var keys []int16
	for _, k := range rc.do(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse).ApiKeys {
		keys = append(keys, k.ApiKey)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	if fmt.Sprint(keys) != "[0 1 2 3 8 9 10 11 12 13 14 15 16 18 19 20 22 32 42 45]" {
		t.Fatalf("advertised APIs %v", keys)
	}
}

// gatherGauges returns the named gauges as "name{label=value,...}" -> value.
func gatherGauges(t *testing.T, g prometheus.Gatherer, names ...string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() != n {
				continue
			}
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out[n+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestOffsetsTopicCannotBeDeleted: deleting the offsets topic would lose
// every group's offsets and break commits, so it is refused.
func TestOffsetsTopicCannotBeDeleted(t *testing.T) {
	e := newEnv(t)
	resp, err := e.admin().DeleteTopics(testCtx(t), "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if r := resp["__consumer_offsets"]; r.Err != kerr.InvalidRequest {
		t.Fatalf("delete: %v", r.Err)
	}
	if _, ok := e.b.Topic("__consumer_offsets"); !ok {
		t.Fatal("offsets topic deleted")
	}
}
