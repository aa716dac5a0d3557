package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
)

// verifyTxnOffsetCommit checks a TxnOffsetCommit whose transactional id is
// coordinated by another broker, as Kafka's group coordinator does (KIP-890):
// the group's __consumer_offsets partition must be in the producer's ongoing
// transaction, asked with a verify_only AddPartitionsToTxn v4, or, for
// TxnOffsetCommit v5 (transaction.version 2, no AddOffsetsToTxn), added
// with AddPartitionsToTxn v5. A partition not in the transaction is
// INVALID_TXN_STATE before v5, as the local check answers.
//
// Unlike the local check, the transaction is not held during the write
// that follows: a transaction the coordinator ends (timeout, fencing) in
// between leaves the offsets pending after its marker. Kafka closes that
// window with the partition's verification guard; the group coordinator's
// write does not take one yet.
func (b *Broker) verifyTxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) error {
	p := group.PartitionFor(req.Group, b.groups.NumPartitions())
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
	return kerr.ErrorForCode(code)
}
