package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/replica"
)

// verifyTxnOffsetCommit checks a TxnOffsetCommit whose transactional id is
// coordinated by another broker, as Kafka's group coordinator does (KIP-890):
// the group's __consumer_offsets partition must be in the producer's ongoing
// transaction, asked with a verify_only AddPartitionsToTxn v4, or, for
// TxnOffsetCommit v5 (transaction.version 2, no AddOffsetsToTxn), added
// with AddPartitionsToTxn v5. A partition not in the transaction is
// INVALID_TXN_STATE before v5, as the local check answers.
//
// The transaction is not held during the write that follows, so the check
// takes the partition's verification guard first and the write presents it
// (group.CommitVerifiedTxnOffsets): an end marker of the producer written
// in between voids it and the write is refused (INVALID_TXN_STATE) instead
// of landing after the marker, where the offsets would hang. A
// transaction already open on the partition needs no round trip.
func (b *Broker) verifyTxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) (replica.VerificationGuard, error) {
	p := group.PartitionFor(req.Group, b.groups.NumPartitions())
	part := b.replicas.Get(group.Topic, p)
	if part == nil {
		return 0, group.ErrNotCoordinator
	}
	guard := part.StartTxnVerification(req.ProducerID, req.ProducerEpoch)
	if guard == replica.NoVerification {
		return guard, nil
	}
	tr := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tr.TransactionalID, tr.ProducerID, tr.ProducerEpoch = req.TransactionalID, req.ProducerID, req.ProducerEpoch
	tr.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: group.Topic, Partitions: []int32{p}}}
	areq := kmsg.NewPtrAddPartitionsToTxnRequest()
	areq.Version, tr.VerifyOnly = 4, true
	if req.Version >= 5 {
		areq.Version, tr.VerifyOnly = 5, false
	}
	areq.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tr}
	resp := b.sendAddPartitionsToTxn(ctx, req.TransactionalID, areq)
	code := resp.ErrorCode
	if code == 0 {
		code = kerr.UnknownServerError.Code
		for _, t := range resp.Transactions {
			for _, rt := range t.Topics {
				for _, rp := range rt.Partitions {
					if t.TransactionalID == req.TransactionalID && rt.Topic == group.Topic && rp.Partition == p {
						code = rp.ErrorCode
					}
				}
			}
		}
	}
	if code == kerr.TransactionAbortable.Code && req.Version < 5 {
		code = kerr.InvalidTxnState.Code
	}
	if err := kerr.ErrorForCode(code); err != nil {
		part.CancelTxnVerification(req.ProducerID, guard)
		return 0, err
	}
	return guard, nil
}
