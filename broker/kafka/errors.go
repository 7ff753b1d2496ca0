package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/storage"
)

// errorCodes maps the sentinel errors of broker, storage and batch to Kafka
// error codes: the one place where sluice's error vocabulary meets Kafka's.
// Entries are tried in order with errors.Is.
var errorCodes = []struct {
	err  error
	code *kerr.Error
}{
	{broker.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{broker.ErrTopicExists, kerr.TopicAlreadyExists},
	{broker.ErrInvalidTopic, kerr.InvalidTopicException},
	{broker.ErrInvalidPartitions, kerr.InvalidPartitions},
	{broker.ErrInvalidConfig, kerr.InvalidConfig},
	{broker.ErrInvalidReplication, kerr.InvalidReplicationFactor},

	{storage.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{storage.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	// A duplicate is normally answered as a success with the original
	// offsets (see 00_produce.go); this entry is for any other path.
	{storage.ErrDuplicateSequence, kerr.DuplicateSequenceNumber},
	{storage.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{storage.ErrCorruptBatch, kerr.CorruptMessage},

	{batch.ErrTooLarge, kerr.MessageTooLarge},
	{batch.ErrBadMagic, kerr.CorruptMessage},
	{batch.ErrCorrupt, kerr.CorruptMessage},
	{batch.ErrTooShort, kerr.CorruptMessage},
	{batch.ErrBadRecord, kerr.CorruptMessage},

	// A partition or broker closing under a request means this node is
	// going away: NOT_LEADER_OR_FOLLOWER is retriable and makes the client
	// refresh metadata and try again, which is what Kafka sends on shutdown.
	{storage.ErrClosed, kerr.NotLeaderForPartition},
	{broker.ErrClosed, kerr.NotLeaderForPartition},

	{broker.ErrNotLeader, kerr.NotLeaderForPartition},
	{broker.ErrLeaderNotAvailable, kerr.LeaderNotAvailable},
	{broker.ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	{broker.ErrNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend},
	{broker.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{broker.ErrUnknownLeaderEpoch, kerr.UnknownLeaderEpoch},
	{broker.ErrReplicationTimeout, kerr.RequestTimedOut},

	{group.ErrNotCoordinator, kerr.NotCoordinator},
	{group.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},

	{errTransactional, kerr.TransactionalIDAuthorizationFailed},
	{errControlBatch, kerr.InvalidRecord},
	{errInvalidAcks, kerr.InvalidRequiredAcks},
	{errNoRecords, kerr.CorruptMessage},
	{errUnknownTopicID, kerr.UnknownTopicID},
	{errInvalidRequest, kerr.InvalidRequest},
	{errDuplicateTopic, kerr.InvalidRequest},
	{errInvalidReplicaAssignmt, kerr.InvalidReplicaAssignment},
	{errInvalidTimestamp, kerr.InvalidRequest},
	{errUnknownResource, kerr.InvalidRequest},
	{errInternalTopic, kerr.InvalidRequest},
}

// errorCode returns the Kafka code for err: 0 for nil, and
// KAFKA_STORAGE_ERROR for anything unexpected, since every such error on
// these paths comes from the disk and the code is retriable.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	return kerr.KafkaStorageError.Code
}

// errorName is the Kafka name of a code, for metrics and logs.
func errorName(code int16) string {
	if e := kerr.TypedErrorForCode(code); e != nil {
		return e.Message
	}
	return "NONE"
}

var (
	errTransactional    = errors.New("sluice does not support transactions")
	errNoRecords        = errors.New("produce request without records")
	errUnknownTopicID   = errors.New("unknown topic id")
	errInvalidRequest   = errors.New("invalid request")
	errInternal         = errors.New("internal error; see the broker log")
	errInvalidTimestamp = errors.New("unknown special timestamp")
	errInternalTopic    = errors.New("the internal offsets topic cannot be deleted")
)

// errMessage is err as the optional ErrorMessage field of a response.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
