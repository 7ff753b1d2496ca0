package kafka

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handler answers one decoded request. A nil response sends nothing (produce
// with acks=0); an error closes the connection.
type handler func(cx *reqCtx, req kmsg.Request) (kmsg.Response, error)

// api is one supported Kafka API and the versions we answer.
type api struct {
	key      int16
	min, max int16
	handle   handler
}

// supportedAPIs is every API this front door implements: ApiVersions
// advertises exactly this list, and everything else is answered with
// UNSUPPORTED_VERSION. To add an API, write its NN_name.go file and add a
// line here.
//
// Minimum versions follow Kafka 4.0 (KIP-896) where that matters: produce
// and fetch need RecordBatch v2 (produce v3+, fetch v4+), the only format
// sluice stores. Maximum versions are the newest that kmsg decodes and whose
// semantics we honour. OffsetCommit and OffsetFetch stop at v9 because v10
// names topics by id (KIP-848 consumer groups); FindCoordinator at v5
// because v6 adds share groups.
func supportedAPIs() []api {
	return []api{
		{key: produceKey, min: 3, max: 12, handle: handleProduce},
		{key: 1, min: 4, max: 16, handle: handleFetch},
		{key: 2, min: 1, max: 10, handle: handleListOffsets},
		{key: 3, min: 0, max: 12, handle: handleMetadata},
		{key: 8, min: 0, max: 9, handle: handleOffsetCommit},
		{key: 9, min: 0, max: 9, handle: handleOffsetFetch},
		{key: 10, min: 0, max: 5, handle: handleFindCoordinator},
		{key: 11, min: 0, max: 9, handle: handleJoinGroup},
		{key: 12, min: 0, max: 4, handle: handleHeartbeat},
		{key: 13, min: 0, max: 5, handle: handleLeaveGroup},
		{key: 14, min: 0, max: 5, handle: handleSyncGroup},
		{key: 15, min: 0, max: 6, handle: handleDescribeGroups},
		{key: 16, min: 0, max: 5, handle: handleListGroups},
		{key: apiVersionsKey, min: 0, max: 4, handle: handleAPIVersions},
		{key: 19, min: 0, max: 7, handle: handleCreateTopics},
		{key: 20, min: 0, max: 6, handle: handleDeleteTopics},
		{key: 22, min: 0, max: 5, handle: handleInitProducerID},
		{key: 32, min: 0, max: 4, handle: handleDescribeConfigs},
		{key: 42, min: 0, max: 2, handle: handleDeleteGroups},
		{key: 45, min: 0, max: 0, handle: handleAlterPartitionReassignments},
	}
}

const (
	produceKey     = 0
	apiVersionsKey = 18
)

// groupsOf names the groups a group request is about; nil for requests
// that are not about particular groups.
func groupsOf(req kmsg.Request) []string {
	switch r := req.(type) {
	case *kmsg.OffsetCommitRequest:
		return []string{r.Group}
	case *kmsg.OffsetFetchRequest:
		if r.Version < 8 {
			return []string{r.Group}
		}
		out := make([]string, len(r.Groups))
		for i, g := range r.Groups {
			out[i] = g.Group
		}
		return out
	case *kmsg.JoinGroupRequest:
		return []string{r.Group}
	case *kmsg.HeartbeatRequest:
		return []string{r.Group}
	case *kmsg.LeaveGroupRequest:
		return []string{r.Group}
	case *kmsg.SyncGroupRequest:
		return []string{r.Group}
	case *kmsg.DescribeGroupsRequest:
		return r.Groups
	case *kmsg.DeleteGroupsRequest:
		return r.Groups
	}
	return nil
}

// maxAPIKey bounds the table; kmsg knows fewer keys than this.
const maxAPIKey = 128

// apiTable indexes supportedAPIs by key.
type apiTable struct {
	byKey  [maxAPIKey]*api
	sorted []api
}

func newAPITable() apiTable {
	var t apiTable
	t.sorted = supportedAPIs()
	sort.Slice(t.sorted, func(i, j int) bool { return t.sorted[i].key < t.sorted[j].key })
	for i := range t.sorted {
		t.byKey[t.sorted[i].key] = &t.sorted[i]
	}
	return t
}

func (t *apiTable) lookup(key int16) *api {
	if key < 0 || int(key) >= len(t.byKey) {
		return nil
	}
	return t.byKey[key]
}

func (t *apiTable) supports(key, version int16) bool {
	a := t.lookup(key)
	return a != nil && version >= a.min && version <= a.max
}

// reqCtx is what a handler knows about the request besides its body.
type reqCtx struct {
	s *Server
	c *conn
	// notCoordinator is the answer to a group request that this cluster
	// node cannot serve (see Server.coordinates).
	notCoordinator kmsg.Response
	key            int16
	version        int16
	// errs counts error codes set in the response, for the errors metric.
	errs int
	// respSize is the handler's guess of the encoded response size, so the
	// response buffer is allocated once (fetch sets it to the record bytes).
	respSize int
	// release holds pooled buffers the response refers to; they are
	// returned to the pool once the response is written.
	release []*[]byte
	// await, if set, runs on the connection's writer before the response
	// is encoded: it waits for work the handler started (produce: the
	// fsync) and completes the response. An error closes the connection.
	await func() error
	// frameDone says the handler no longer needs the request frame, so it
	// is reused at once rather than kept until the response is written.
	frameDone bool
	// stop, if set, ends a JoinGroup or SyncGroup wait early instead of
	// the server's close; the fuzz harness closes it so no input blocks.
	stop <-chan struct{}
	// clientID is the request header's client id; it aliases the frame.
	clientID []byte
}

// waitStop is what ends a handler's wait for the group coordinator.
func (cx *reqCtx) waitStop() <-chan struct{} {
	if cx.stop != nil {
		return cx.stop
	}
	return cx.s.done
}

// code maps err to a Kafka error code (see errors.go) and counts it.
func (cx *reqCtx) code(err error) int16 {
	code := errorCode(err)
	cx.count(code)
	return code
}

// count records an error code the handler set directly.
func (cx *reqCtx) count(code int16) {
	if code != 0 {
		cx.errs++
		cx.s.m.countError(cx.key, code)
	}
}
