package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// harness drives a Machine with a fake clock and collects replies by token.
type harness struct {
	t       *testing.T
	m       *Machine
	now     time.Time
	tok     Token
	replies map[Token]Reply
}

func newHarness(t *testing.T, cfg Config) *harness {
	return &harness{t: t, m: NewMachine(cfg), now: time.Unix(1000, 0), replies: map[Token]Reply{}}
}

func (h *harness) take(rs []Reply) {
	for _, r := range rs {
		if _, dup := h.replies[r.To]; dup {
			h.t.Fatalf("token %d answered twice", r.To)
		}
		h.replies[r.To] = r
	}
}

func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	h.take(h.m.Tick(h.now))
}

func joinReq(member string, protos ...string) JoinRequest {
	r := JoinRequest{Group: "g", MemberID: member, ProtocolType: "consumer",
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 20 * time.Second, RequireKnownID: true}
	for _, p := range protos {
		r.Protocols = append(r.Protocols, Protocol{Name: p, Metadata: []byte(p)})
	}
	return r
}

// join sends a JoinGroup and returns its token.
func (h *harness) join(req JoinRequest) Token {
	h.tok++
	h.take(h.m.Join(h.now, req, h.tok))
	return h.tok
}

func (h *harness) sync(req SyncRequest) Token {
	h.tok++
	h.take(h.m.Sync(h.now, req, h.tok))
	return h.tok
}

func (h *harness) joinResult(tok Token) *JoinResult {
	h.t.Helper()
	r, ok := h.replies[tok]
	if !ok || r.Join == nil {
		return nil
	}
	return r.Join
}

func (h *harness) syncResult(tok Token) *SyncResult {
	h.t.Helper()
	r, ok := h.replies[tok]
	if !ok || r.Sync == nil {
		return nil
	}
	return r.Sync
}

// newMember does the two-step join and returns the member id and the
// token of the second join, which waits for the rebalance.
func (h *harness) newMember(protos ...string) (string, Token) {
	h.t.Helper()
	first := h.joinResult(h.join(joinReq("", protos...)))
	if first == nil || first.Err != kerr.MemberIDRequired || first.MemberID == "" {
		h.t.Fatalf("first join: %+v", first)
	}
	return first.MemberID, h.join(joinReq(first.MemberID, protos...))
}

func consumerAssignment(topic string, parts ...int32) []byte {
	var a kmsg.ConsumerMemberAssignment
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: topic, Partitions: parts}}
	return a.AppendTo(nil)
}

// stable brings two members into a Stable group and returns their ids and
// the generation.
func (h *harness) stable() (leader, follower string, gen int32) {
	h.t.Helper()
	a, ta := h.newMember("range")
	b, tb := h.newMember("range")
	h.advance(300 * time.Millisecond) // the initial delay
	ra, rb := h.joinResult(ta), h.joinResult(tb)
	if ra == nil || rb == nil || ra.Err != nil || rb.Err != nil {
		h.t.Fatalf("joins not answered: %+v %+v", ra, rb)
	}
	leader, gen = ra.LeaderID, ra.Generation
	follower = b
	if leader == b {
		follower = a
	}
	sf := h.sync(SyncRequest{Group: "g", MemberID: follower, Generation: gen})
	sl := h.sync(SyncRequest{Group: "g", MemberID: leader, Generation: gen, Assignments: map[string][]byte{
		leader: consumerAssignment("t", 0), follower: consumerAssignment("t", 1),
	}})
	if r := h.syncResult(sf); r == nil || r.Err != nil || string(r.Assignment) != string(consumerAssignment("t", 1)) {
		h.t.Fatalf("follower sync: %+v", r)
	}
	if r := h.syncResult(sl); r == nil || r.Err != nil {
		h.t.Fatalf("leader sync: %+v", r)
	}
	if d, _ := h.m.Describe("g"); d.State != Stable {
		h.t.Fatalf("state %s", d.State)
	}
	return leader, follower, gen
}

func TestJoinSyncFlow(t *testing.T) {
	h := newHarness(t, Config{})
	a, ta := h.newMember("range", "roundrobin")
	if h.joinResult(ta) != nil {
		t.Fatal("join answered before the initial delay")
	}
	h.advance(200 * time.Millisecond)
	b, tb := h.newMember("roundrobin", "range")
	h.advance(200 * time.Millisecond) // b's arrival extended the delay
	if h.joinResult(ta) != nil {
		t.Fatal("initial delay not extended by a new member")
	}
	h.advance(100 * time.Millisecond)
	ra, rb := h.joinResult(ta), h.joinResult(tb)
	if ra == nil || rb == nil {
		t.Fatal("joins not answered after the delay")
	}
	if ra.Generation != 1 || rb.Generation != 1 || ra.LeaderID != a || rb.LeaderID != a {
		t.Fatalf("generation/leader: %+v %+v", ra, rb)
	}
	// One vote each; the tie goes to the first name.
	if ra.Protocol != "range" {
		t.Fatalf("protocol %q", ra.Protocol)
	}
	if len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("members: leader %d follower %d", len(ra.Members), len(rb.Members))
	}
	// A heartbeat between join and sync is fine; a stale one is not.
	if err := h.m.Heartbeat(h.now, "g", b, "", 1); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := h.m.Heartbeat(h.now, "g", b, "", 0); err != kerr.IllegalGeneration {
		t.Fatalf("stale heartbeat: %v", err)
	}
	if err := h.m.Heartbeat(h.now, "g", "nobody", "", 1); err != kerr.UnknownMemberID {
		t.Fatalf("unknown member heartbeat: %v", err)
	}
}

func TestProtocolSelection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members [][]string
		want    string
	}{
		{"common first choice", [][]string{{"a", "b"}, {"a", "b"}}, "a"},
		{"majority preference", [][]string{{"b", "a"}, {"b", "a"}, {"a", "b"}}, "b"},
		{"only one common", [][]string{{"x", "c"}, {"c", "y"}}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Everyone joins within the initial delay: one generation.
			h := newHarness(t, Config{InitialRebalanceDelay: time.Second})
			var toks []Token
			for _, ps := range tc.members {
				req := joinReq("", ps...)
				req.RequireKnownID = false
				toks = append(toks, h.join(req))
			}
			h.advance(time.Minute)
			r := h.joinResult(toks[0])
			if r == nil || r.Protocol != tc.want {
				t.Fatalf("got %+v, want %q", r, tc.want)
			}
		})
	}
}

func TestInconsistentProtocol(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	h.newMember("range")
	r := h.joinResult(h.join(joinReq("", "sticky")))
	if r == nil || r.Err != kerr.InconsistentGroupProtocol {
		t.Fatalf("got %+v", r)
	}
	other := joinReq("", "range")
	other.ProtocolType = "connect"
	if r := h.joinResult(h.join(other)); r == nil || r.Err != kerr.InconsistentGroupProtocol {
		t.Fatalf("protocol type: %+v", r)
	}
}

func TestJoinErrors(t *testing.T) {
	h := newHarness(t, Config{})
	for _, tc := range []struct {
		name string
		req  JoinRequest
		want *kerr.Error
	}{
		{"empty group id", func() JoinRequest { r := joinReq("", "range"); r.Group = ""; return r }(), kerr.InvalidGroupID},
		{"unknown member", joinReq("ghost", "range"), kerr.UnknownMemberID},
		{"session too short", func() JoinRequest { r := joinReq("", "range"); r.SessionTimeout = time.Millisecond; return r }(), kerr.InvalidSessionTimeout},
		{"no protocols", joinReq(""), kerr.InconsistentGroupProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.joinResult(h.join(tc.req)); r == nil || r.Err != tc.want {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
		})
	}
}

func TestSyncErrorsAndBadAssignment(t *testing.T) {
	h := newHarness(t, Config{})
	leader, follower, gen := h.stable()
	for _, tc := range []struct {
		name string
		req  SyncRequest
		want *kerr.Error
	}{
		{"unknown group", SyncRequest{Group: "nope", MemberID: leader, Generation: gen}, kerr.UnknownMemberID},
		{"unknown member", SyncRequest{Group: "g", MemberID: "ghost", Generation: gen}, kerr.UnknownMemberID},
		{"stale generation", SyncRequest{Group: "g", MemberID: follower, Generation: gen - 1}, kerr.IllegalGeneration},
		{"wrong protocol", SyncRequest{Group: "g", MemberID: follower, Generation: gen, Protocol: "sticky"}, kerr.InconsistentGroupProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.syncResult(h.sync(tc.req)); r == nil || r.Err != tc.want {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
		})
	}
	// Rejoin of the leader starts a rebalance; a garbled assignment from
	// it is refused and the group rebalances again.
	tl := h.join(joinReq(leader, "range"))
	tf := h.join(joinReq(follower, "range"))
	rl := h.joinResult(tl)
	if rl == nil || h.joinResult(tf) == nil || rl.Generation != gen+1 {
		t.Fatalf("rejoin: %+v", rl)
	}
	sf := h.sync(SyncRequest{Group: "g", MemberID: follower, Generation: gen + 1})
	sl := h.sync(SyncRequest{Group: "g", MemberID: leader, Generation: gen + 1, Assignments: map[string][]byte{follower: {0xff, 0xff, 0xff}}})
	if r := h.syncResult(sl); r == nil || r.Err != kerr.InconsistentGroupProtocol {
		t.Fatalf("leader with garbage: %+v", r)
	}
	if r := h.syncResult(sf); r == nil || r.Err != kerr.RebalanceInProgress {
		t.Fatalf("follower after garbage: %+v", r)
	}
	if err := h.m.Heartbeat(h.now, "g", follower, "", gen+1); err != kerr.RebalanceInProgress {
		t.Fatalf("heartbeat during rebalance: %v", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	h := newHarness(t, Config{})
	leader, follower, gen := h.stable()
	// The leader keeps heartbeating; the follower goes silent.
	for range 2 {
		h.advance(4 * time.Second)
		if err := h.m.Heartbeat(h.now, "g", leader, "", gen); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	h.advance(4 * time.Second) // past the follower's 10s session
	if err := h.m.Heartbeat(h.now, "g", follower, "", gen); err != kerr.UnknownMemberID {
		t.Fatalf("expired follower heartbeat: %v", err)
	}
	if err := h.m.Heartbeat(h.now, "g", leader, "", gen); err != kerr.RebalanceInProgress {
		t.Fatalf("leader after expiry: %v", err)
	}
	tl := h.join(joinReq(leader, "range"))
	r := h.joinResult(tl)
	if r == nil || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("rejoin after expiry: %+v", r)
	}
}

func TestRebalanceTimeoutKicksSlowMember(t *testing.T) {
	h := newHarness(t, Config{})
	leader, follower, gen := h.stable()
	tl := h.join(joinReq(leader, "range", "roundrobin")) // new metadata: rebalance
	h.advance(19 * time.Second)
	// Heartbeats keep the follower's session alive but it never rejoins.
	if err := h.m.Heartbeat(h.now, "g", follower, "", gen); err != kerr.RebalanceInProgress {
		t.Fatalf("heartbeat: %v", err)
	}
	if h.joinResult(tl) != nil {
		t.Fatal("completed before the rebalance timeout")
	}
	h.advance(time.Second)
	r := h.joinResult(tl)
	if r == nil || r.Err != nil || r.Generation != gen+1 || len(r.Members) != 1 || r.Members[0].MemberID != leader {
		t.Fatalf("after timeout: %+v", r)
	}
	if err := h.m.Heartbeat(h.now, "g", follower, "", gen); err != kerr.UnknownMemberID {
		t.Fatalf("kicked member: %v", err)
	}
}

func TestSyncTimeoutRemovesSilentMembers(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	a, ta := h.newMember("range")
	r := h.joinResult(ta)
	if r == nil || r.LeaderID != a {
		t.Fatalf("join: %+v", r)
	}
	// The leader never syncs.
	h.advance(20 * time.Second)
	if d, _ := h.m.Describe("g"); d.State != Empty || len(d.Members) != 0 {
		t.Fatalf("after sync timeout: %+v", d)
	}
}

func TestLeaveAndBatchLeave(t *testing.T) {
	h := newHarness(t, Config{})
	leader, follower, gen := h.stable()
	errs, rs := h.m.Leave(h.now, "g", []LeaveMember{{MemberID: follower}, {MemberID: "ghost"}})
	h.take(rs)
	if errs[0] != nil || errs[1] != kerr.UnknownMemberID {
		t.Fatalf("leave errors: %v", errs)
	}
	tl := h.join(joinReq(leader, "range"))
	r := h.joinResult(tl)
	if r == nil || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("after leave: %+v", r)
	}
	errs, _ = h.m.Leave(h.now, "nope", []LeaveMember{{MemberID: leader}})
	if errs[0] != kerr.UnknownMemberID {
		t.Fatalf("unknown group leave: %v", errs)
	}
	if err := h.m.Delete("g"); err != kerr.NonEmptyGroup {
		t.Fatalf("delete non-empty: %v", err)
	}
	errs, rs = h.m.Leave(h.now, "g", []LeaveMember{{MemberID: leader}})
	h.take(rs)
	if errs[0] != nil {
		t.Fatal(errs)
	}
	if d, _ := h.m.Describe("g"); d.State != Empty || d.Generation != gen+2 {
		t.Fatalf("after last leave: %+v", d)
	}
}

func TestPendingMemberExpires(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	r := h.joinResult(h.join(joinReq("", "range")))
	if r.Err != kerr.MemberIDRequired {
		t.Fatal(r)
	}
	h.advance(11 * time.Second)
	if r := h.joinResult(h.join(joinReq(r.MemberID, "range"))); r == nil || r.Err != kerr.UnknownMemberID {
		t.Fatalf("join with expired pending id: %+v", r)
	}
}

func TestStaticMembership(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	req := joinReq("", "range")
	req.InstanceID = "i1"
	r := h.joinResult(h.join(req))
	if r == nil || r.Err != nil || r.MemberID == "" {
		t.Fatalf("static join needs no second step: %+v", r)
	}
	old := r.MemberID
	if s := h.syncResult(h.sync(SyncRequest{Group: "g", MemberID: old, InstanceID: "i1", Generation: r.Generation,
		Assignments: map[string][]byte{old: consumerAssignment("t", 0)}})); s == nil || s.Err != nil {
		t.Fatalf("sync: %+v", s)
	}
	// The instance restarts: same instance id, no member id.
	r2 := h.joinResult(h.join(req))
	if r2 == nil || r2.Err != nil || r2.MemberID == old {
		t.Fatalf("static rejoin: %+v", r2)
	}
	if err := h.m.Heartbeat(h.now, "g", old, "i1", r2.Generation); err != kerr.UnknownMemberID {
		t.Fatalf("old incarnation: %v", err)
	}
	fenced := req
	fenced.MemberID = old
	if r := h.joinResult(h.join(fenced)); r == nil || r.Err != kerr.FencedInstanceID {
		t.Fatalf("old incarnation joining: %+v", r)
	}
	errs, _ := h.m.Leave(h.now, "g", []LeaveMember{{InstanceID: "i1"}})
	if errs[0] != nil {
		t.Fatal(errs)
	}
}

func TestCheckCommit(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.m.CheckCommit(h.now, "fresh", "", "", -1); err != nil {
		t.Fatalf("outside commit to a new group: %v", err)
	}
	leader, _, gen := h.stable()
	if err := h.m.CheckCommit(h.now, "g", leader, "", gen); err != nil {
		t.Fatal(err)
	}
	if err := h.m.CheckCommit(h.now, "g", leader, "", gen-1); err != kerr.IllegalGeneration {
		t.Fatal(err)
	}
	if err := h.m.CheckCommit(h.now, "g", "", "", -1); err != kerr.UnknownMemberID {
		t.Fatalf("outside commit to a live group: %v", err)
	}
	// An eager member commits with its old generation while the group
	// prepares a rebalance.
	h.join(joinReq(leader, "range", "x"))
	if err := h.m.CheckCommit(h.now, "g", leader, "", gen); err != nil {
		t.Fatalf("commit during PreparingRebalance: %v", err)
	}
}
