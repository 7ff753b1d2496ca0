package group

// The rest of the state machine: SyncGroup, heartbeats, leaving, the
// passage of time, and read-only views. state.go has the types and the
// join phase.

import (
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Sync handles a SyncGroup.
func (m *Machine) Sync(now time.Time, req SyncRequest, tok Token) []Reply {
	fail := func(e *kerr.Error) []Reply { return []Reply{{To: tok, Sync: &SyncResult{Err: e}}} }
	g := m.groups[req.Group]
	switch {
	case req.Group == "":
		return fail(kerr.InvalidGroupID)
	case g == nil || g.members[req.MemberID] == nil:
		return fail(kerr.UnknownMemberID)
	case req.InstanceID != "" && g.static[req.InstanceID] != req.MemberID:
		return fail(kerr.FencedInstanceID)
	case req.Generation != g.generation:
		return fail(kerr.IllegalGeneration)
	case req.ProtocolType != "" && req.ProtocolType != g.protocolType,
		req.Protocol != "" && req.Protocol != g.protocol:
		return fail(kerr.InconsistentGroupProtocol)
	}
	mb := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case Stable:
		mb.deadline = now.Add(mb.session)
		return []Reply{{To: tok, Sync: &SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: mb.assignment}}}
	}
	// CompletingRebalance.
	var out []Reply
	if mb.syncWait != nil {
		out = append(out, Reply{To: *mb.syncWait, Sync: &SyncResult{Err: kerr.RebalanceInProgress}})
	}
	mb.syncWait = &tok
	mb.deadline = now.Add(mb.session)
	if mb.id != g.leader {
		return out
	}
	if g.protocolType == "consumer" {
		for _, a := range req.Assignments {
			if len(a) == 0 {
				continue // an empty assignment is how many clients say "nothing"
			}
			var ca kmsg.ConsumerMemberAssignment
			if err := ca.ReadFrom(a); err != nil {
				// Kafka keeps assignments opaque; sluice checks them
				// because a garbled one would leave a member silently
				// idle. The leader is told, and the group rebalances.
				mb.syncWait = nil
				out = append(out, Reply{To: tok, Sync: &SyncResult{Err: kerr.InconsistentGroupProtocol}})
				return append(out, m.prepare(now, g)...)
			}
		}
	}
	// Assignments for unknown members are ignored, as in Kafka; members
	// without one get an empty assignment.
	for _, o := range g.members {
		o.assignment = req.Assignments[o.id]
		if o.assignment == nil {
			o.assignment = []byte{}
		}
		if o.syncWait != nil {
			out = append(out, Reply{To: *o.syncWait, Sync: &SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: o.assignment}})
			o.syncWait = nil
		}
	}
	g.state = Stable
	g.syncDeadline = time.Time{}
	return out
}

// Heartbeat handles a Heartbeat; nil means success.
func (m *Machine) Heartbeat(now time.Time, group, memberID, instanceID string, generation int32) *kerr.Error {
	g := m.groups[group]
	switch {
	case group == "":
		return kerr.InvalidGroupID
	case g == nil || g.members[memberID] == nil:
		return kerr.UnknownMemberID
	case instanceID != "" && g.static[instanceID] != memberID:
		return kerr.FencedInstanceID
	case generation != g.generation:
		return kerr.IllegalGeneration
	}
	mb := g.members[memberID]
	mb.deadline = now.Add(mb.session)
	if g.state == PreparingRebalance {
		return kerr.RebalanceInProgress
	}
	return nil
}

// LeaveMember is one member leaving (LeaveGroup v3+ leaves in batches).
type LeaveMember struct {
	MemberID, InstanceID string
}

// Leave removes members; the error for each is returned in order.
func (m *Machine) Leave(now time.Time, group string, leaving []LeaveMember) ([]*kerr.Error, []Reply) {
	errs := make([]*kerr.Error, len(leaving))
	g := m.groups[group]
	var out []Reply
	removed := false
	for i, l := range leaving {
		if g == nil {
			errs[i] = kerr.UnknownMemberID
			continue
		}
		id := l.MemberID
		if l.InstanceID != "" {
			cur, ok := g.static[l.InstanceID]
			if !ok {
				errs[i] = kerr.UnknownMemberID
				continue
			}
			if id != "" && id != cur {
				errs[i] = kerr.FencedInstanceID
				continue
			}
			id = cur
		}
		if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			removed = true
			continue
		}
		mb := g.members[id]
		if mb == nil {
			errs[i] = kerr.UnknownMemberID
			continue
		}
		out = append(out, m.drop(g, mb)...)
		removed = true
	}
	if removed && g != nil {
		out = append(out, m.afterRemoval(now, g)...)
	}
	return errs, out
}

// drop removes a member and answers its waiting requests.
func (m *Machine) drop(g *Group, mb *member) []Reply {
	var out []Reply
	if mb.joinWait != nil {
		out = append(out, Reply{To: *mb.joinWait, Join: &JoinResult{Err: kerr.UnknownMemberID, MemberID: mb.id, Generation: -1}})
	}
	if mb.syncWait != nil {
		out = append(out, Reply{To: *mb.syncWait, Sync: &SyncResult{Err: kerr.UnknownMemberID}})
	}
	m.remove(g, mb.id)
	return out
}

// afterRemoval rebalances a group whose membership shrank.
func (m *Machine) afterRemoval(now time.Time, g *Group) []Reply {
	switch g.state {
	case Stable, CompletingRebalance:
		out := m.prepare(now, g)
		return append(out, m.maybeComplete(now, g)...)
	case PreparingRebalance:
		return m.maybeComplete(now, g)
	}
	return nil
}

// Tick applies the passage of time: expired sessions, pending ids and
// rebalance and sync timeouts.
func (m *Machine) Tick(now time.Time) []Reply {
	var out []Reply
	for _, name := range m.sortedGroupNames() {
		g := m.groups[name]
		for id, d := range g.pending {
			if !now.Before(d) {
				delete(g.pending, id)
			}
		}
		removed := false
		for _, mb := range g.sortedMembers() {
			// A member waiting for an answer cannot heartbeat on the
			// same connection; the rebalance timeouts cover it.
			if mb.joinWait == nil && mb.syncWait == nil && !mb.deadline.IsZero() && !now.Before(mb.deadline) && g.state != PreparingRebalance {
				out = append(out, m.drop(g, mb)...)
				removed = true
			}
		}
		if removed {
			out = append(out, m.afterRemoval(now, g)...)
		}
		switch g.state {
		case PreparingRebalance:
			if !now.Before(g.joinDeadline) {
				out = append(out, m.complete(now, g)...)
			} else {
				out = append(out, m.maybeComplete(now, g)...)
			}
		case CompletingRebalance:
			if !g.syncDeadline.IsZero() && !now.Before(g.syncDeadline) {
				for _, mb := range g.sortedMembers() {
					if mb.syncWait == nil {
						out = append(out, m.drop(g, mb)...)
					}
				}
				out = append(out, m.afterRemoval(now, g)...)
			}
		}
	}
	return out
}

// NextDeadline is the earliest time at which Tick has something to do;
// zero if nothing is scheduled.
func (m *Machine) NextDeadline() time.Time {
	var next time.Time
	see := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, g := range m.groups {
		for _, d := range g.pending {
			see(d)
		}
		switch g.state {
		case PreparingRebalance:
			see(g.joinDeadline)
			see(g.delayUntil)
		case CompletingRebalance:
			see(g.syncDeadline)
		}
		if g.state != PreparingRebalance {
			for _, mb := range g.members {
				if mb.joinWait == nil && mb.syncWait == nil {
					see(mb.deadline)
				}
			}
		}
	}
	return next
}

func (m *Machine) sortedGroupNames() []string {
	names := make([]string, 0, len(m.groups))
	for n := range m.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MemberInfo describes a member for DescribeGroups.
type MemberInfo struct {
	MemberID, InstanceID, ClientID, ClientHost string
	Metadata, Assignment                       []byte
}

// Description describes a group for DescribeGroups.
type Description struct {
	Name, ProtocolType, Protocol string
	State                        State
	Generation                   int32
	Leader                       string
	Members                      []MemberInfo
}

// Describe returns a group's description; ok is false for an unknown group.
func (m *Machine) Describe(name string) (Description, bool) {
	g := m.groups[name]
	if g == nil {
		return Description{Name: name, State: Dead}, false
	}
	d := Description{Name: name, ProtocolType: g.protocolType, State: g.state, Generation: g.generation, Leader: g.leader}
	if g.state == Stable || g.state == CompletingRebalance {
		d.Protocol = g.protocol
	}
	for _, mb := range g.sortedMembers() {
		mi := MemberInfo{MemberID: mb.id, InstanceID: mb.instanceID, ClientID: mb.clientID, ClientHost: mb.clientHost}
		if g.state == Stable {
			mi.Assignment = mb.assignment
		}
		for _, p := range mb.protocols {
			if p.Name == g.protocol {
				mi.Metadata = p.Metadata
			}
		}
		d.Members = append(d.Members, mi)
	}
	return d, true
}

// Groups lists every group the machine knows, with its state and type.
func (m *Machine) Groups() []Description {
	out := make([]Description, 0, len(m.groups))
	for _, n := range m.sortedGroupNames() {
		g := m.groups[n]
		out = append(out, Description{Name: n, State: g.state, ProtocolType: g.protocolType})
	}
	return out
}

// Delete forgets a group, which must have no members: NON_EMPTY_GROUP
// otherwise. An unknown group is not an error here; the offset store
// decides whether it existed.
func (m *Machine) Delete(name string) *kerr.Error {
	g := m.groups[name]
	if g == nil {
		return nil
	}
	if len(g.members) > 0 || len(g.pending) > 0 {
		return kerr.NonEmptyGroup
	}
	delete(m.groups, name)
	return nil
}

// CheckCommit says whether an offset commit from a member is allowed, as
// Kafka checks it: generation -1 and no member id is a commit from outside
// the group (kadm, a simple consumer), accepted unless the group has
// members; otherwise the member and generation must be current.
func (m *Machine) CheckCommit(now time.Time, group, memberID, instanceID string, generation int32) *kerr.Error {
	g := m.groups[group]
	if generation < 0 && memberID == "" {
		if g != nil && len(g.members) > 0 {
			return kerr.UnknownMemberID
		}
		return nil
	}
	// During PreparingRebalance a member still commits with the old
	// generation: that is how an eager consumer hands its partitions over
	// cleanly before it rejoins. Between join and sync the assignment is
	// in flux, so commits wait.
	switch {
	case g != nil && g.state == CompletingRebalance:
		return kerr.RebalanceInProgress
	case g == nil || g.members[memberID] == nil:
		return kerr.UnknownMemberID
	case instanceID != "" && g.static[instanceID] != memberID:
		return kerr.FencedInstanceID
	case generation != g.generation:
		return kerr.IllegalGeneration
	}
	mb := g.members[memberID]
	mb.deadline = now.Add(mb.session)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
