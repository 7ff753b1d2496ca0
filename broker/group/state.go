package group

import (
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// State is a classic group's state, with Kafka's names (DescribeGroups and
// ListGroups report them verbatim).
type State string

const (
	Empty               State = "Empty"
	PreparingRebalance  State = "PreparingRebalance"
	CompletingRebalance State = "CompletingRebalance"
	Stable              State = "Stable"
	Dead                State = "Dead"
)

// Token identifies a request that is waiting for the state machine (a
// JoinGroup or SyncGroup). The shell picks tokens; the machine hands them
// back in Replies when the answer is known.
type Token uint64

// Protocol is one assignment protocol a member supports, with its
// subscription metadata.
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup request.
type JoinRequest struct {
	Group            string
	MemberID         string // "" for a new member
	InstanceID       string // static membership; "" for none
	ProtocolType     string
	Protocols        []Protocol
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// RequireKnownID is JoinGroup v4+: a new member first gets its id with
	// MEMBER_ID_REQUIRED and joins again with it (KIP-394).
	RequireKnownID bool
	ClientID       string
	ClientHost     string
}

// JoinMember is a member as the leader sees it in its JoinGroup answer.
type JoinMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte
}

// JoinResult answers a JoinGroup.
type JoinResult struct {
	Err          *kerr.Error // nil for success
	Generation   int32
	ProtocolType string
	Protocol     string
	LeaderID     string
	MemberID     string
	Members      []JoinMember // leader only
}

// SyncRequest is a SyncGroup request; Assignments is set by the leader.
type SyncRequest struct {
	Group        string
	MemberID     string
	InstanceID   string
	Generation   int32
	ProtocolType string // "" when the client did not say (before v5)
	Protocol     string
	Assignments  map[string][]byte
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err          *kerr.Error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// Reply is an answer to a waiting request. Exactly one of Join and Sync is
// set.
type Reply struct {
	To   Token
	Join *JoinResult
	Sync *SyncResult
}

// Config holds the coordinator's timing rules. Zero fields get defaults.
type Config struct {
	// InitialRebalanceDelay holds back the first rebalance of an empty
	// group so that members starting together land in one generation
	// (Kafka's group.initial.rebalance.delay.ms). Each new member extends
	// it, up to the rebalance timeout. Negative: no delay. Default 300ms.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound a member's session
	// timeout (group.min/max.session.timeout.ms); default 1s and 30m.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// MemberIDNonce goes into every member id so that ids handed out by
	// an earlier run of the node (the machine restarts its counter) never
	// match new ones. New fills it with random bytes; tests leave it empty.
	MemberIDNonce string
}

func (c Config) sanitize() Config {
	if c.InitialRebalanceDelay == 0 {
		c.InitialRebalanceDelay = 300 * time.Millisecond
	}
	if c.InitialRebalanceDelay < 0 {
		c.InitialRebalanceDelay = 0
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = time.Second
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	return c
}

// member is one member of a group.
type member struct {
	id, instanceID       string
	clientID, clientHost string
	protocolType         string
	protocols            []Protocol
	session, rebalance   time.Duration
	// deadline is when the member expires unless it heartbeats.
	deadline time.Time
	// joinWait and syncWait are the member's waiting requests, if any.
	joinWait, syncWait *Token
	assignment         []byte
	// joinedAt orders members for leader election.
	joinedAt uint64
}

// Group is one classic consumer group's membership.
type Group struct {
	name         string
	state        State
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	// pending are ids handed out with MEMBER_ID_REQUIRED that have not
	// joined yet; each expires at its deadline.
	pending map[string]time.Time
	// static maps an instance id to its current member id.
	static map[string]string
	// delayUntil holds back completing the rebalance (initial delay);
	// joinDeadline completes it regardless, kicking members that have not
	// rejoined (the rebalance timeout). syncDeadline plays that role for
	// CompletingRebalance: members that have not synced by then are removed.
	delayUntil, joinDeadline, syncDeadline time.Time
	joinSeq                                uint64
}

// Machine is the group coordinator's pure state machine: every input
// carries the current time and every output is returned, so tests drive it
// deterministically. It is not safe for concurrent use; the shell
// (Coordinator) serializes calls.
type Machine struct {
	cfg    Config
	groups map[string]*Group
	nextID uint64
}

// NewMachine returns an empty state machine.
func NewMachine(cfg Config) *Machine {
	return &Machine{cfg: cfg.sanitize(), groups: make(map[string]*Group)}
}

func (m *Machine) newMemberID(clientID string) string {
	m.nextID++
	if clientID == "" {
		clientID = "member"
	}
	return fmt.Sprintf("%s-%s%016x", clientID, m.cfg.MemberIDNonce, m.nextID)
}

// Join handles a JoinGroup. The answer for tok may be in the returned
// replies at once or come later from another call or Tick.
func (m *Machine) Join(now time.Time, req JoinRequest, tok Token) []Reply {
	fail := func(e *kerr.Error) []Reply {
		return []Reply{{To: tok, Join: &JoinResult{Err: e, MemberID: req.MemberID, Generation: -1}}}
	}
	switch {
	case req.Group == "":
		return fail(kerr.InvalidGroupID)
	case req.SessionTimeout < m.cfg.MinSessionTimeout || req.SessionTimeout > m.cfg.MaxSessionTimeout:
		return fail(kerr.InvalidSessionTimeout)
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		return fail(kerr.InconsistentGroupProtocol)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	g := m.groups[req.Group]
	if g == nil {
		if req.MemberID != "" && req.InstanceID == "" {
			return fail(kerr.UnknownMemberID)
		}
		g = &Group{name: req.Group, state: Empty, members: map[string]*member{}, pending: map[string]time.Time{}, static: map[string]string{}}
		m.groups[req.Group] = g
	}
	if len(g.members) > 0 && !g.compatible(req.ProtocolType, req.Protocols) {
		return fail(kerr.InconsistentGroupProtocol)
	}

	// Static member: the instance id names the member; a new member id
	// replaces the old one (the old client instance is fenced).
	if req.InstanceID != "" {
		if old, ok := g.static[req.InstanceID]; ok {
			if req.MemberID == "" || req.MemberID != old {
				if req.MemberID != "" {
					return fail(kerr.FencedInstanceID)
				}
				om := g.members[old]
				newID := m.newMemberID(req.ClientID)
				var out []Reply
				if om.joinWait != nil {
					out = append(out, Reply{To: *om.joinWait, Join: &JoinResult{Err: kerr.FencedInstanceID, MemberID: old, Generation: -1}})
					om.joinWait = nil
				}
				if om.syncWait != nil {
					out = append(out, Reply{To: *om.syncWait, Sync: &SyncResult{Err: kerr.FencedInstanceID}})
					om.syncWait = nil
				}
				delete(g.members, old)
				om.id = newID
				g.members[newID] = om
				g.static[req.InstanceID] = newID
				if g.leader == old {
					g.leader = newID
				}
				req.MemberID = newID
				return append(out, m.joinKnown(now, g, om, req, tok)...)
			}
		} else if req.MemberID == "" {
			req.MemberID = m.newMemberID(req.ClientID)
			return m.addMember(now, g, req, tok)
		} else {
			return fail(kerr.UnknownMemberID)
		}
	}

	if req.MemberID == "" {
		id := m.newMemberID(req.ClientID)
		if req.RequireKnownID {
			g.pending[id] = now.Add(req.SessionTimeout)
			return []Reply{{To: tok, Join: &JoinResult{Err: kerr.MemberIDRequired, MemberID: id, Generation: -1}}}
		}
		req.MemberID = id
		return m.addMember(now, g, req, tok)
	}
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		return m.addMember(now, g, req, tok)
	}
	mb := g.members[req.MemberID]
	if mb == nil {
		return fail(kerr.UnknownMemberID)
	}
	return m.joinKnown(now, g, mb, req, tok)
}

// compatible reports whether a joining member can be in the group: same
// protocol type and at least one protocol every member supports.
func (g *Group) compatible(ptype string, protos []Protocol) bool {
	if ptype != g.protocolType {
		return false
	}
	for _, p := range protos {
		all := true
		for _, mb := range g.members {
			if !supports(mb, p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func supports(mb *member, name string) bool {
	for _, p := range mb.protocols {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (m *Machine) addMember(now time.Time, g *Group, req JoinRequest, tok Token) []Reply {
	g.joinSeq++
	mb := &member{
		id: req.MemberID, instanceID: req.InstanceID, clientID: req.ClientID, clientHost: req.ClientHost,
		protocolType: req.ProtocolType, protocols: req.Protocols,
		session: req.SessionTimeout, rebalance: req.RebalanceTimeout,
		joinWait: &tok, joinedAt: g.joinSeq,
	}
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members[mb.id] = mb
	if mb.instanceID != "" {
		g.static[mb.instanceID] = mb.id
	}
	var out []Reply
	if g.state == Empty {
		// The initial delay: wait a little for more members, extended by
		// each one that arrives, never beyond the rebalance timeout.
		out = m.prepare(now, g)
		g.delayUntil = now.Add(m.cfg.InitialRebalanceDelay)
	} else if g.state == PreparingRebalance && !g.delayUntil.IsZero() && now.Before(g.joinDeadline) {
		g.delayUntil = minTime(now.Add(m.cfg.InitialRebalanceDelay), g.joinDeadline)
	} else if g.state != PreparingRebalance {
		out = m.prepare(now, g)
	}
	g.joinDeadline = maxTime(g.joinDeadline, now.Add(mb.rebalance))
	return append(out, m.maybeComplete(now, g)...)
}

func (m *Machine) joinKnown(now time.Time, g *Group, mb *member, req JoinRequest, tok Token) []Reply {
	var out []Reply
	if mb.joinWait != nil {
		// A retried join replaces the earlier one, which gets no answer
		// worth waiting for.
		out = append(out, Reply{To: *mb.joinWait, Join: &JoinResult{Err: kerr.UnknownMemberID, MemberID: mb.id, Generation: -1}})
	}
	changed := !sameProtocols(mb.protocols, req.Protocols)
	mb.protocols, mb.protocolType = req.Protocols, req.ProtocolType
	mb.session, mb.rebalance = req.SessionTimeout, req.RebalanceTimeout
	mb.joinWait = &tok
	switch g.state {
	case PreparingRebalance:
		g.joinDeadline = maxTime(g.joinDeadline, now.Add(mb.rebalance))
	case CompletingRebalance, Stable:
		if !changed && (g.state == CompletingRebalance || mb.id != g.leader) {
			// Nothing new: answer with the current generation, as if the
			// member had received the lost response.
			mb.joinWait = nil
			mb.deadline = now.Add(mb.session)
			return append(out, Reply{To: tok, Join: g.joinResult(mb)})
		}
		out = append(out, m.prepare(now, g)...)
		g.joinDeadline = maxTime(g.joinDeadline, now.Add(mb.rebalance))
	}
	return append(out, m.maybeComplete(now, g)...)
}

func sameProtocols(a, b []Protocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Metadata) != string(b[i].Metadata) {
			return false
		}
	}
	return true
}

// prepare starts a rebalance: waiting syncs learn of it, and every member
// must join again by the rebalance timeout.
func (m *Machine) prepare(now time.Time, g *Group) []Reply {
	var out []Reply
	for _, mb := range g.members {
		if mb.syncWait != nil {
			out = append(out, Reply{To: *mb.syncWait, Sync: &SyncResult{Err: kerr.RebalanceInProgress}})
			mb.syncWait = nil
		}
		mb.assignment = nil
	}
	g.state = PreparingRebalance
	g.delayUntil = time.Time{}
	g.syncDeadline = time.Time{}
	g.joinDeadline = now
	for _, mb := range g.members {
		g.joinDeadline = maxTime(g.joinDeadline, now.Add(mb.rebalance))
	}
	return out
}

// maybeComplete finishes the join phase once every member has rejoined,
// no id handed out is still expected, and the initial delay is over.
func (m *Machine) maybeComplete(now time.Time, g *Group) []Reply {
	if g.state != PreparingRebalance || now.Before(g.delayUntil) {
		return nil
	}
	if len(g.pending) > 0 && now.Before(g.joinDeadline) {
		return nil
	}
	for _, mb := range g.members {
		if mb.joinWait == nil {
			return nil
		}
	}
	return m.complete(now, g)
}

// complete ends the join phase: a new generation, a protocol and a leader,
// and answers to every waiting join.
func (m *Machine) complete(now time.Time, g *Group) []Reply {
	var out []Reply
	for id, mb := range g.members {
		if mb.joinWait == nil {
			// Did not rejoin within the rebalance timeout.
			m.remove(g, id)
		}
	}
	clear(g.pending)
	g.generation++
	g.delayUntil, g.joinDeadline = time.Time{}, time.Time{}
	if len(g.members) == 0 {
		// The protocol type stays, as in Kafka, so an emptied consumer
		// group is still listed as one; the next first joiner resets it.
		g.state, g.protocol, g.leader = Empty, "", ""
		return nil
	}
	g.protocol = g.selectProtocol()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = ""
		var first *member
		for _, mb := range g.members {
			if first == nil || mb.joinedAt < first.joinedAt {
				first = mb
			}
		}
		g.leader = first.id
	}
	g.state = CompletingRebalance
	g.syncDeadline = now
	for _, mb := range g.members {
		mb.deadline = now.Add(mb.session)
		g.syncDeadline = maxTime(g.syncDeadline, now.Add(mb.rebalance))
		out = append(out, Reply{To: *mb.joinWait, Join: g.joinResult(mb)})
		mb.joinWait = nil
	}
	return out
}

// selectProtocol picks, among the protocols every member supports, the
// one most members prefer, each voting for its first supported candidate;
// ties go to the alphabetically first name so that the choice is
// deterministic.
func (g *Group) selectProtocol() string {
	candidates := map[string]bool{}
	for _, mb := range g.members {
		for _, p := range mb.protocols {
			candidates[p.Name] = true
		}
	}
	for name := range candidates {
		for _, mb := range g.members {
			if !supports(mb, name) {
				delete(candidates, name)
				break
			}
		}
	}
	votes := map[string]int{}
	for _, mb := range g.members {
		for _, p := range mb.protocols {
			if candidates[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	best, n := "", -1
	for name, v := range votes {
		if v > n || v == n && name < best {
			best, n = name, v
		}
	}
	return best
}

func (g *Group) joinResult(mb *member) *JoinResult {
	r := &JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, LeaderID: g.leader, MemberID: mb.id}
	if mb.id == g.leader {
		for _, o := range g.sortedMembers() {
			var meta []byte
			for _, p := range o.protocols {
				if p.Name == g.protocol {
					meta = p.Metadata
				}
			}
			r.Members = append(r.Members, JoinMember{MemberID: o.id, InstanceID: o.instanceID, Metadata: meta})
		}
	}
	return r
}

func (g *Group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, mb := range g.members {
		ms = append(ms, mb)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].joinedAt < ms[j].joinedAt })
	return ms
}

func (m *Machine) remove(g *Group, id string) {
	mb := g.members[id]
	if mb == nil {
		return
	}
	delete(g.members, id)
	if mb.instanceID != "" && g.static[mb.instanceID] == id {
		delete(g.static, mb.instanceID)
	}
}
