package broker

// Transactions (KIP-98, KIP-890): InitProducerId (key 22) v0-5 with a
// transactional id, AddPartitionsToTxn (24) v0-5, AddOffsetsToTxn (25) v0-4,
// EndTxn (26) v0-5, TxnOffsetCommit (28) v0-5, DescribeTransactions (65) v0,
// ListTransactions (66) v0, and FindCoordinator key type 1 (the leader of
// partition abs(javaHashCode(id)) % partitions of __transaction_state,
// created compacted on first use). The coordinator logic is internal/txn;
// the transactional offsets are written by internal/group to
// __consumer_offsets as the producer's transactional records, made
// effective by the transaction's marker there.
//
// KIP-890: AddPartitionsToTxn v4+ is the broker-to-coordinator form (a batch
// of transactions, each verify_only or an add; v5 adds for transaction.version
// 2), which the produce path also uses in process (produce.go). EndTxn v5 and
// TxnOffsetCommit v5 are transaction.version 2: EndTxn bumps the epoch and
// returns it, TxnOffsetCommit adds the group to the transaction itself. The
// v4/v5 of InitProducerId/AddOffsetsToTxn/EndTxn/TxnOffsetCommit that only
// allow TRANSACTION_ABORTABLE need nothing else.
//
// PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH to versions that
// predate it (KIP-588), as Kafka does.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
	"github.com/gregor-dev/gregor/internal/txn"
)

// txnCode maps a transaction API error; fencedFrom is the first version
// that knows PRODUCER_FENCED.
func (b *Broker) txnCode(err error, version, fencedFrom int16) int16 {
	code := b.groupCode(err)
	if code == kerr.ProducerFenced.Code && version < fencedFrom {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// txnCoordinator finds (creating __transaction_state if needed) the broker
// leading the transactional id's partition.
func (b *Broker) txnCoordinator(ctx context.Context, id string) (int32, string, int32, error) {
	if b.cfg.Transactions == nil {
		return -1, "", -1, txn.ErrCoordinatorNotAvailable
	}
	return b.internalCoordinator(ctx, id, txn.Topic, "transaction.state.log.num.partitions",
		"transaction.state.log.replication.factor", "transaction.state.log.min.isr", txn.ErrCoordinatorNotAvailable, b.cfg.Transactions.Serving)
}

// initTransactional answers InitProducerId for a transactional id.
func (b *Broker) initTransactional(ctx context.Context, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) {
	if b.cfg.Transactions == nil || *req.TransactionalID == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		if b.cfg.Transactions == nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		return
	}
	pid, epoch := int64(-1), int16(-1)
	if req.Version >= 3 {
		pid, epoch = req.ProducerID, req.ProducerEpoch
	}
	id, ep, err := b.cfg.Transactions.InitProducerID(ctx, *req.TransactionalID,
		time.Duration(req.TransactionTimeoutMillis)*time.Millisecond, pid, epoch)
	if err != nil {
		resp.ErrorCode = b.txnCode(err, req.Version, 4)
		return
	}
	resp.ProducerID, resp.ProducerEpoch = id, ep
}

// txnOrUnavailable answers a transaction API while no coordinator runs.
func (b *Broker) txns() (*txn.Coordinator, error) {
	if b.cfg.Transactions == nil {
		return nil, txn.ErrCoordinatorNotAvailable
	}
	return b.cfg.Transactions, nil
}

func handleAddPartitionsToTxn(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.AddPartitionsToTxnRequest)
	return func(ctx context.Context) kmsg.Response {
		ctx, cancel := requestTimeout(ctx, 0)
		defer cancel()
		return b.addPartitionsToTxn(ctx, req)
	}
}

// addPartitionsToTxn answers an AddPartitionsToTxn of any version. v0-3
// come from clients and carry one transaction; v4+ (KIP-890) come from
// partition leaders and batch transactions, each either verify_only (is
// every partition in the ongoing transaction? nothing is written) or an add
// (v5: a transaction.version 2 produce's implicit add). The produce path
// reaches the coordinator through this same function (txnVerifier).
func (b *Broker) addPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		var topics []kmsg.AddPartitionsToTxnRequestTransactionTopic
		for _, t := range req.Topics {
			topics = append(topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
		res := b.addPartitionsTxn(ctx, req.Version, kmsg.AddPartitionsToTxnRequestTransaction{
			TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch,
			Topics: topics})
		for _, t := range res.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, p.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, t := range req.Transactions {
		resp.Transactions = append(resp.Transactions, b.addPartitionsTxn(ctx, req.Version, t))
	}
	return resp
}

// addPartitionsTxn runs one transaction of an AddPartitionsToTxn.
func (b *Broker) addPartitionsTxn(ctx context.Context, version int16, t kmsg.AddPartitionsToTxnRequestTransaction) kmsg.AddPartitionsToTxnResponseTransaction {
	img := b.image()
	var tps []txn.TopicPartition
	unknown := false
	for _, rt := range t.Topics {
		mt := img.Topics[rt.Topic]
		for _, p := range rt.Partitions {
			if mt == nil || p < 0 || int(p) >= len(mt.Partitions) {
				unknown = true
			}
			tps = append(tps, txn.TopicPartition{Topic: rt.Topic, Partition: p})
		}
	}
	var code int16
	var codes map[txn.TopicPartition]error
	switch c, err := b.txns(); {
	case err != nil:
		code = b.groupCode(err)
	case t.TransactionalID == "":
		code = kerr.InvalidRequest.Code
	case unknown:
	case t.VerifyOnly:
		codes, err = c.VerifyPartitions(t.TransactionalID, t.ProducerID, t.ProducerEpoch, tps)
		code = b.txnCode(err, version, 2)
	default:
		code = b.txnCode(c.AddPartitions(ctx, t.TransactionalID, t.ProducerID, t.ProducerEpoch, tps, version >= 5), version, 2)
	}
	res := kmsg.NewAddPartitionsToTxnResponseTransaction()
	res.TransactionalID = t.TransactionalID
	for _, rt := range t.Topics {
		out := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
		out.Topic = rt.Topic
		mt := img.Topics[rt.Topic]
		for _, p := range rt.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			switch {
			case unknown:
				// As Kafka: the unknown ones fail, the others are not attempted.
				rp.ErrorCode = kerr.OperationNotAttempted.Code
				if mt == nil || p < 0 || int(p) >= len(mt.Partitions) {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
			case codes != nil:
				rp.ErrorCode = b.errorCode(codes[txn.TopicPartition{Topic: rt.Topic, Partition: p}])
			}
			out.Partitions = append(out.Partitions, rp)
		}
		res.Topics = append(res.Topics, out)
	}
	return res
}

func handleAddOffsetsToTxn(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.AddOffsetsToTxnRequest)
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		c, err := b.txns()
		if err == nil {
			ctx, cancel := requestTimeout(ctx, 0)
			err = c.AddOffsets(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, false)
			cancel()
		}
		resp.ErrorCode = b.txnCode(err, req.Version, 2)
		return resp
	}
}

func handleEndTxn(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.EndTxnRequest)
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		pid, epoch := int64(-1), int16(-1)
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
		if req.TransactionalID == "" {
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp
		}
		c, err := b.txns()
		if err == nil {
			ctx, cancel := requestTimeout(ctx, 0)
			// v5+: the producer runs transaction.version 2 (KIP-890 part 2).
			pid, epoch, err = c.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, req.Version >= 5)
			cancel()
		}
		resp.ErrorCode = b.txnCode(err, req.Version, 2)
		if err != nil {
			pid, epoch = -1, -1
		}
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
		return resp
	}
}

func handleTxnOffsetCommit(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.TxnOffsetCommitRequest)
	offs := map[group.TopicPartition]group.Offset{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			epoch := int32(-1)
			if req.Version >= 2 {
				epoch = p.LeaderEpoch
			}
			offs[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = group.Offset{Offset: p.Offset, LeaderEpoch: epoch, Metadata: deref(p.Metadata)}
		}
	}
	gen, member, instance := int32(-1), "", ""
	if req.Version >= 3 {
		gen, member, instance = req.Generation, req.MemberID, deref(req.InstanceID)
	}
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		ctx, cancel := requestTimeout(ctx, 0)
		defer cancel()
		var res map[group.TopicPartition]error
		var lookup error // the transaction coordinator could not be found
		c, err := b.txns()
		if err == nil {
			node, _, _, cerr := b.txnCoordinator(ctx, req.TransactionalID)
			lookup = cerr
			if cerr == nil && node != b.cfg.NodeID {
				// The transaction's coordinator is another broker: verify
				// there, then write here (txnremote.go).
				var guard replica.VerificationGuard
				if guard, err = b.verifyTxnOffsetCommit(ctx, req); err == nil {
					res, err = b.groups.CommitVerifiedTxnOffsets(ctx, uint64(guard), req.Group, member, instance, gen,
						req.ProducerID, req.ProducerEpoch, offs)
				}
				c = nil
			}
		}
		if c != nil && err == nil && req.Version >= 5 {
			// transaction.version 2 producers send no AddOffsetsToTxn: the
			// commit adds the group to the transaction (KIP-890 part 2).
			err = c.AddOffsets(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, true)
		}
		if c != nil && err == nil {
			err = c.CommitOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, func() (err error) {
				res, err = b.groups.CommitTxnOffsets(ctx, req.Group, member, instance, gen, req.ProducerID, req.ProducerEpoch, offs)
				return err
			})
		}
		if lookup != nil && errors.Is(err, txn.ErrNotCoordinator) {
			// Tried here only because the lookup failed: the client's
			// group coordinator is right, so not NOT_COORDINATOR, but the
			// transaction's is not available (retriable).
			err = lookup
		}
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				if err != nil {
					rp.ErrorCode = b.txnCode(err, req.Version, 3)
				} else {
					rp.ErrorCode = b.groupCode(res[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}])
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

func handleDescribeTransactions(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	c, cerr := b.txns()
	for _, id := range req.TransactionalIDs {
		ts := kmsg.NewDescribeTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.ProducerEpoch, ts.StartTimestamp = id, -1, -1, -1
		err := cerr
		var m txn.Metadata
		if err == nil {
			m, err = c.Describe(id)
		}
		if err != nil {
			ts.ErrorCode = b.groupCode(err)
			resp.TransactionStates = append(resp.TransactionStates, ts)
			continue
		}
		ts.State, ts.TimeoutMillis = m.State.String(), int32(m.Timeout/time.Millisecond)
		ts.ProducerID, ts.ProducerEpoch = m.ProducerID, m.ProducerEpoch
		if !m.TxnStart.IsZero() {
			ts.StartTimestamp = m.TxnStart.UnixMilli()
		}
		var cur *kmsg.DescribeTransactionsResponseTransactionStateTopic
		for _, tp := range m.SortedPartitions() {
			if cur == nil || cur.Topic != tp.Topic {
				ts.Topics = append(ts.Topics, kmsg.DescribeTransactionsResponseTransactionStateTopic{Topic: tp.Topic})
				cur = &ts.Topics[len(ts.Topics)-1]
			}
			cur.Partitions = append(cur.Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return done(resp)
}

func handleListTransactions(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	c, err := b.txns()
	if err != nil {
		resp.ErrorCode = b.groupCode(err)
		return done(resp)
	}
	var states []txn.State
	for _, s := range req.StateFilters {
		st, ok := txn.ParseState(s)
		if !ok {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
			continue
		}
		states = append(states, st)
	}
	if len(req.StateFilters) > 0 && len(states) == 0 {
		return done(resp) // only unknown states: nothing matches
	}
	now := time.Now().UnixMilli()
	for _, m := range c.List(states, req.ProducerIDFilters) {
		// v1 (KIP-994): only transactions that started more than the
		// filter ago; one never started counts from -1, as in Kafka.
		if req.Version >= 1 && req.DurationFilterMillis >= 0 {
			start := int64(-1)
			if !m.TxnStart.IsZero() {
				start = m.TxnStart.UnixMilli()
			}
			if now-start <= req.DurationFilterMillis {
				continue
			}
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = m.ID, m.ProducerID, m.State.String()
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return done(resp)
}
