package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleInitProducerID gives an idempotent producer a new producer id with
// epoch 0. Kafka does the same for non-transactional producers even when
// they send their current id and epoch (KIP-360): a fresh id starts fresh
// sequence numbers. Transactional ids are refused: sluice has no
// transaction coordinator.
func handleInitProducerID(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		resp.ErrorCode = cx.code(errTransactional)
		return resp, nil
	}
	var (
		id  int64
		err error
	)
	if cx.s.cluster != nil {
		// Ids must be unique in the cluster: a producer may write to
		// partitions led by any node.
		ctx, cancel := cx.s.requestContext(0)
		id, err = cx.s.cluster.NextProducerID(ctx)
		cancel()
	} else {
		id, err = cx.s.b.NextProducerID()
	}
	if err != nil {
		resp.ErrorCode = cx.code(err)
		if resp.ErrorCode == kerr.KafkaStorageError.Code {
			cx.c.log.Error("allocate producer id", "err", err)
		}
		return resp, nil
	}
	resp.ProducerID = id
	resp.ProducerEpoch = 0
	return resp, nil
}
