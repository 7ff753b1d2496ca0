// Package kafka is the Kafka wire-protocol front door of one sluice node: it
// accepts TCP connections from unmodified Kafka clients (franz-go,
// librdkafka/kcat, confluent-kafka-python, kafkajs), decodes their requests
// and answers them from the node's broker.Broker.
//
// Every request and response is encoded and decoded by
// github.com/twmb/franz-go/pkg/kmsg; this package never hand-encodes a Kafka
// message. Only the frame (a 4-byte size) and the request header (api key,
// version, correlation id, client id, tagged fields) are read here, with
// franz-go's kbin reader, because kmsg leaves them to the caller.
//
// Layout: one file per Kafka API, named by its key as in franz-go's kfake
// (00_produce.go, 01_fetch.go, ...). apis.go holds the table of supported
// APIs and version ranges; adding an API is a new file plus a table entry,
// and ApiVersions advertises exactly that table.
//
// # Why
//
// Requests on a connection are handled one at a time, in order, and
// answered in order. Kafka itself mutes a connection while a request is in
// flight, so clients expect responses in request order and nothing more;
// franz-go opens separate connections for producing, fetching and group
// traffic, so a long-polling fetch does not hold up produce requests.
// In-order handling also keeps an idempotent producer's pipelined requests
// for one partition in order, which concurrent handling would have to
// re-establish. One exception, for speed: a produce request's answer may
// wait for its fsync while the next produce requests are appended, so that
// requests pipelined on one connection share a group-commit fsync instead
// of paying one each. A separate writer goroutine per connection answers
// them in order (see pipeline.go).
//
// Produce appends the producer's bytes. The records of a produce request
// alias the frame buffer (kmsg does not copy byte fields); storage validates
// the batches, rewrites the base offset and leader epoch in place and writes
// them. The front door reads only the 61-byte batch headers, for the records
// counter and to refuse transactional batches, never individual records.
//
// Fetch serves the bytes storage returns, unmodified, inside a kmsg
// FetchResponse. Fetch sessions (KIP-227) are not kept: every response
// carries session id 0, which tells clients that no session was created, and
// they keep sending full fetch requests. Kafka itself does this when its
// session cache is full.
//
// Consumer groups (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
// DeleteGroups) are answered by the group coordinator of broker/group; this
// node is every group's coordinator. JoinGroup and SyncGroup wait inside
// their handler until the rebalance completes. That holds up only their own
// connection, which Kafka clients dedicate to the coordinator, and no lock:
// the coordinator parks the request and answers it from whichever request
// or timer completes the rebalance.
//
// Unsupported requests are answered, not dropped: a request of a key and
// version that kmsg can decode but that sluice does not implement gets a
// response of the same key whose error codes are UNSUPPORTED_VERSION (see
// unsupported.go). An ApiVersions request of a version we do not know gets
// the version-0 response with UNSUPPORTED_VERSION and our list, as Kafka does,
// so the client retries with a version we support. Anything else that cannot
// be parsed closes the connection, which is what Kafka does too.
package kafka
