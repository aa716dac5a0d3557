package broker

// Produce (key 0) v3-12: record batch v2 only.
//
// Handle does the ordered part (its partitions side by side, see
// appendJobs): for each partition it validates the single
// batch over its raw bytes (sizes, magic, CRC-32C, record framing, no control
// batches from clients, a producer id on transactional batches), checks
// idempotent-producer sequence and epoch (a transactional batch also opens
// its producer's transaction on the partition, pinning the last stable
// offset until the coordinator's marker), and appends the bytes with base offset and leader epoch patched in place. The
// Completion does the waiting: acks=all returns only once every appended
// batch is fsynced on the leader (group commit shares fsyncs) and the high
// watermark passed it, i.e. every ISR member has it on disk (an ISR below
// min.insync.replicas meanwhile: NOT_ENOUGH_REPLICAS_AFTER_APPEND; the
// request timeout: REQUEST_TIMED_OUT); acks=1 returns after the leader's append,
// acks=0 sends no response. A retried idempotent batch is answered with its
// original offsets and is not written again.
//
// Transaction verification (KIP-890), as Kafka's ReplicaManager: before a
// transactional batch of a produce carrying a transactional id opens its
// producer's transaction on a partition, the partition is checked with the
// transaction coordinator through AddPartitionsToTxn v4+ (one request for
// all such partitions of the produce): verify_only for Produce v3-11, an add
// for v12+ (transaction.version 2 producers send no AddPartitionsToTxn: the
// produce adds the partition). A partition not in the transaction is refused
// with INVALID_TXN_STATE (v3-10) or TRANSACTION_ABORTABLE (v11+); a
// coordinator that cannot answer gives NOT_ENOUGH_REPLICAS, which old
// clients retry. The replica's verification guard makes an end marker
// written meanwhile void the check. It runs in the ordered part, so the
// appends of one connection keep their order.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/quota"
	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// maxUncompressedBatch caps what one compressed batch may expand to while its
// records are validated: a decompression bomb stops here instead of
// exhausting memory.
const maxUncompressedBatch = 64 << 20

// decompressSlots is how many compressed batches are validated at once across
// the node: with maxUncompressedBatch it caps decompression memory at 256 MiB
// however many clients send bombs.
const decompressSlots = 4

var (
	errMultipleBatches   = errors.New("broker: a v2 produce must carry exactly one record batch per partition")
	errNoRecords         = errors.New("broker: produce carries no record batch")
	errControlFromClient = errors.New("broker: clients may not write control batches")
	// errNullKeyCompacted: Kafka refuses keyless records for compacted
	// topics ("Compacted topic cannot accept message without key").
	errNullKeyCompacted = errors.New("broker: compacted topic cannot accept a record without key")
	errTxnNoProducer    = errors.New("broker: a transactional batch must carry a producer id")
	errInvalidTimestamp = errors.New("broker: record timestamp outside the topic's message.timestamp bounds")
)

type pendingDurable struct {
	p      *replica.Partition
	offset int64
	epoch  int32 // the leader epoch of the append: a leader deposed since acknowledges nothing
	resp   *kmsg.ProduceResponseTopicPartition
}

func handleProduce(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	img := b.image()
	validAcks := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	var waits []pendingDurable
	var jobs []produceJob
	verified, verr := b.verifyTxnProduce(ctx, req, img)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		topic := img.Topics[t.Topic]
		for j, tp := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = tp.Partition
			rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
			switch {
			case !validAcks:
				rp.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
			case topic == nil || tp.Partition < 0 || int(tp.Partition) >= len(topic.Partitions):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			case verr != nil:
				rp.ErrorCode = b.produceErrorCode(verr)
				continue
			case req.Version < 7 && isZstd(tp.Records):
				// As Kafka's ProduceRequest.validateRecords: zstd
				// came with Produce v7 (KIP-110).
				rp.ErrorCode = kerr.UnsupportedCompressionType.Code
				continue
			}
			v, verify := verified[txnPartition{t.Topic, tp.Partition}]
			if verify && v.code != 0 {
				rp.ErrorCode = v.code
				if req.Version >= 8 && v.message != "" {
					rp.ErrorMessage = &v.message
				}
				continue
			}
			p := b.leaderReplica(topic, tp.Partition)
			var perr error
			if off := b.replicas.Offline(); off != nil {
				perr = off // KAFKA_STORAGE_ERROR: the log directory is offline
			} else if p == nil || !b.leaseHeld() {
				perr = replica.ErrNotLeader // no lease: possibly deposed
			}
			if perr != nil {
				rp.ErrorCode = b.produceErrorCode(perr)
				if req.Version >= 8 {
					rp.ErrorMessage = errorMessage(perr)
				}
				continue
			}
			guard := (*replica.VerificationGuard)(nil)
			if verify {
				guard = &v.guard
			}
			jobs = append(jobs, produceJob{p: p, records: tp.Records, guard: guard, resp: rp})
		}
	}
	b.appendJobs(jobs, req.Acks)
	for i := range jobs {
		j := &jobs[i]
		rp := j.resp
		if j.err != nil {
			rp.ErrorCode = b.produceErrorCode(j.err)
			if req.Version >= 8 {
				rp.ErrorMessage = errorMessage(j.err)
				var nk *nullKeysError
				if errors.As(j.err, &nk) {
					msg := fmt.Sprintf("Compacted topic cannot accept message without key in topic partition %s-%d.", j.p.Topic, j.p.Index)
					for _, idx := range nk.records {
						e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
						e.RelativeOffset, e.ErrorMessage = idx, &msg
						rp.ErrorRecords = append(rp.ErrorRecords, e)
					}
				}
			}
			continue
		}
		res := j.res
		rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
		if req.Acks == -1 {
			waits = append(waits, pendingDurable{p: j.p, offset: res.LastOffset + 1, epoch: res.LeaderEpoch, resp: rp})
		}
	}
	// As Kafka, every produce request counts against its client's quota,
	// whatever became of its batches.
	if throttle := b.quotas.Record(quota.Produce, userOf(sreq), sreq.ClientID, sreq.Size); throttle > 0 {
		resp.ThrottleMillis = throttleMillis(throttle)
		if req.Acks == 0 && sreq.Mute != nil {
			sreq.Mute(throttle)
		}
	}
	if req.Acks == 0 {
		// The client reads no response; durability still follows the flush policy.
		return nil
	}
	listener := listenerOf(sreq)
	if len(waits) == 0 {
		return done(b.leaderHints(resp, listener))
	}
	// A timeout shorter than an fsync would fail writes that are in fact
	// durable a moment later; wait at least a second.
	timeout := max(msDuration(req.TimeoutMillis), time.Second)
	return func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		// Partitions are separate files: their fsyncs run side by side so a
		// request spanning many partitions waits for the slowest, not the sum.
		// Each WaitDurable joins that partition's group commit.
		var wg sync.WaitGroup
		for i := range waits {
			w := &waits[i]
			wait := func() {
				err := w.p.WaitDurable(ctx, w.offset)
				if err == nil {
					err = w.p.WaitReplicatedInEpoch(ctx, w.offset, w.epoch)
				}
				if err != nil {
					w.resp.ErrorCode = b.produceErrorCode(err)
					w.resp.BaseOffset = -1
				}
			}
			if len(waits) == 1 {
				wait()
			} else {
				wg.Go(wait)
			}
		}
		wg.Wait()
		return b.leaderHints(resp, listener)
	}
}

// leaderHints adds, as Kafka does from Produce v10 (KIP-951), the leader
// this broker's metadata knows to every partition answered
// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, and that leader's endpoint
// on the request's listener: a client moves its batches there at once
// instead of waiting for its next metadata refresh (franz-go waits up to
// 5 s between refreshes, and the chaos runs' clients resumed writing 5.1 s
// after many faults). A leader this broker does not know, or one without
// an endpoint on the listener, is not named.
func (b *Broker) leaderHints(resp *kmsg.ProduceResponse, listener string) *kmsg.ProduceResponse {
	if resp.Version < 10 {
		return resp
	}
	var img *metadata.Image
	named := map[int32]bool{}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			if rp.ErrorCode != kerr.NotLeaderForPartition.Code && rp.ErrorCode != kerr.FencedLeaderEpoch.Code {
				continue
			}
			if img == nil {
				img = b.image()
			}
			t := img.Topics[rt.Topic]
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				continue
			}
			p := t.Partitions[rp.Partition]
			br, ok := img.Brokers[p.Leader]
			if !ok || br.Fenced {
				continue
			}
			host, port, ok := br.Endpoint(listener)
			if !ok {
				continue
			}
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = p.Leader, p.LeaderEpoch
			if !named[p.Leader] {
				named[p.Leader] = true
				nb := kmsg.NewProduceResponseBroker()
				nb.NodeID, nb.Host, nb.Port = p.Leader, host, port
				if br.Rack != "" {
					rack := br.Rack
					nb.Rack = &rack
				}
				resp.Brokers = append(resp.Brokers, nb)
			}
		}
	}
	return resp
}

// produceJob is one partition's batch of a produce: its append and outcome.
type produceJob struct {
	p       *replica.Partition
	records []byte
	guard   *replica.VerificationGuard
	resp    *kmsg.ProduceResponseTopicPartition
	res     replica.AppendResult
	err     error
}

// appendJobs validates and appends every job's batch. Different partitions
// are different logs with their own append locks, so their CRC checks and
// page-cache writes run side by side on up to GOMAXPROCS goroutines (the
// caller's among them): a request's latency is then about its largest
// partition's write, not the sum of all of them. A request naming one
// partition twice is appended in request order instead. Either way every
// append ends before Handle returns, so the next request of the connection
// still appends after this one.
func (b *Broker) appendJobs(jobs []produceJob, acks int16) {
	run := func(j *produceJob) {
		j.res, j.err = b.appendBatch(j.p, j.records, acks, j.guard)
		if acks == -1 && j.err == nil && !j.res.Duplicate && len(jobs) > 1 {
			// Start this partition's fsync now, while the request's
			// other partitions are still being written: the disk is
			// otherwise idle until the last append ends. The
			// completion's WaitDurable joins it (group commit).
			go j.p.Sync()
		}
	}
	workers := min(len(jobs), runtime.GOMAXPROCS(0))
	if workers <= 1 || hasDuplicatePartition(jobs) {
		for i := range jobs {
			run(&jobs[i])
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
			run(&jobs[i])
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

func hasDuplicatePartition(jobs []produceJob) bool {
	if len(jobs) > 16 {
		seen := make(map[*replica.Partition]struct{}, len(jobs))
		for _, j := range jobs {
			if _, ok := seen[j.p]; ok {
				return true
			}
			seen[j.p] = struct{}{}
		}
		return false
	}
	for i := range jobs {
		for j := range i {
			if jobs[i].p == jobs[j].p {
				return true
			}
		}
	}
	return false
}

// appendBatch validates the raw batch and appends it. It decodes nothing
// beyond the header and walks records without allocating.
// guard is nil unless the batch's transaction was verified (KIP-890).
func (b *Broker) appendBatch(p *replica.Partition, records []byte, acks int16, guard *replica.VerificationGuard) (replica.AppendResult, error) {
	if len(records) == 0 {
		return replica.AppendResult{}, errNoRecords
	}
	if len(records) >= record.HeaderSize {
		if n := int64(record.LengthOverhead) + int64(int32(be32(records[8:]))); n > 0 && n < int64(len(records)) {
			return replica.AppendResult{}, errMultipleBatches
		}
	}
	h, err := record.ValidateProduce(records)
	if err != nil {
		return replica.AppendResult{}, err
	}
	if int64(len(records)) > p.Config().MaxMessageBytes {
		return replica.AppendResult{}, replica.ErrMessageTooLarge
	}
	if h.IsControl() {
		return replica.AppendResult{}, errControlFromClient
	}
	if h.IsTransactional() && h.ProducerID < 0 {
		return replica.AppendResult{}, errTxnNoProducer
	}
	cfg := p.Config()
	if to, ok := topicCodec(cfg); ok && to != h.Compression() {
		// The topic's compression.type names another codec: the
		// records are rewritten with it, as Kafka's LogValidator does
		// (the only produce path that does not keep the sent bytes).
		b.decompressSlots <- struct{}{}
		levels := record.Levels{Gzip: cfg.GzipLevel, LZ4: cfg.LZ4Level, Zstd: cfg.ZstdLevel}
		out, err := record.Recompress(nil, records, h, to, levels, maxUncompressedBatch)
		<-b.decompressSlots
		if err != nil {
			return replica.AppendResult{}, err
		}
		if int64(len(out)) > cfg.MaxMessageBytes {
			return replica.AppendResult{}, replica.ErrMessageTooLarge
		}
		records = out
		if h, err = record.Validate(records); err != nil {
			return replica.AppendResult{}, err
		}
	}
	var ts record.Timestamps
	if h.Compression() != record.CodecNone {
		// Each compressed batch may expand to maxUncompressedBatch while it is
		// checked; the slots bound what all connections together can hold.
		b.decompressSlots <- struct{}{}
		var err error
		ts, err = record.CheckRecords(records, h, maxUncompressedBatch)
		if err == nil && cfg.Compact {
			err = checkKeys(records, h)
		}
		<-b.decompressSlots
		if err != nil {
			return replica.AppendResult{}, err
		}
	} else {
		var err error
		if ts, err = record.CheckRecords(records, h, maxUncompressedBatch); err != nil {
			return replica.AppendResult{}, err
		}
		if cfg.Compact {
			if err := checkKeys(records, h); err != nil {
				return replica.AppendResult{}, err
			}
		}
	}
	if err := checkTimestamps(cfg, ts, time.Now().UnixMilli()); err != nil {
		return replica.AppendResult{}, err
	}
	if guard != nil {
		return p.AppendVerified(records, h, acks, *guard)
	}
	return p.Append(records, h, acks)
}

// nullKeysError refuses a batch for a compacted topic: records lists the
// index in the batch of every record without a key, which the Produce
// response (v8+) reports one by one (KIP-467), as Kafka does, so that a
// client fails only those records with INVALID_RECORD and the others of the
// batch as collateral (librdkafka's 0011_produce_batch counts both).
type nullKeysError struct{ records []int32 }

// maxRecordErrors bounds the records one partition's Produce answer names
// (a 1 MiB batch can hold 100,000 tiny records); the rest are failed with
// the batch all the same.
const maxRecordErrors = 10_000

func (e *nullKeysError) Error() string {
	return fmt.Sprintf("%v (the first at batch index %d)", errNullKeyCompacted, e.records[0])
}

func (e *nullKeysError) Unwrap() error { return errNullKeyCompacted }

// checkKeys refuses a batch for a compacted topic holding records without a
// key (a *nullKeysError naming each of them).
func checkKeys(batch []byte, h record.Header) error {
	var missing []int32
	var i int32
	err := record.Records(batch, h, maxUncompressedBatch, func(r record.Record) error {
		if r.Key == nil && len(missing) < maxRecordErrors {
			missing = append(missing, i)
		}
		i++
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &nullKeysError{records: missing}
	}
	return nil
}

type txnPartition struct {
	topic     string
	partition int32
}

// verification is the outcome of one partition's transaction check.
type verification struct {
	p       *replica.Partition
	guard   replica.VerificationGuard
	code    int16 // the produce's error for the partition, 0 to append
	message string
}

var errMixedProducers = errors.New("broker: transactional records of more than one producer in one produce")

// checkTimestamps refuses a batch with a record timestamp outside the
// topic's bounds (message.timestamp.before.max.ms, .after.max.ms), as
// Kafka's LogValidator does for every record of a CreateTime topic; a
// LogAppendTime topic overwrites the timestamps and checks nothing.
func checkTimestamps(cfg config.Topic, ts record.Timestamps, now int64) error {
	if cfg.LogAppendTime {
		return nil
	}
	if cfg.TimestampBefore < now && ts.Min < now-cfg.TimestampBefore {
		return fmt.Errorf("%w: timestamp %d is more than %d ms before the broker's %d", errInvalidTimestamp, ts.Min, cfg.TimestampBefore, now)
	}
	if cfg.TimestampAfter < math.MaxInt64-now && ts.Max > now+cfg.TimestampAfter {
		return fmt.Errorf("%w: timestamp %d is more than %d ms after the broker's %d", errInvalidTimestamp, ts.Max, cfg.TimestampAfter, now)
	}
	return nil
}

// verifyTxnProduce checks, before anything is appended, the partitions on
// which a transactional batch of req would open its producer's transaction
// (see the file comment). It returns the partitions that carry such a batch;
// an error fails the whole produce.
func (b *Broker) verifyTxnProduce(ctx context.Context, req *kmsg.ProduceRequest, img *metadata.Image) (map[txnPartition]verification, error) {
	if req.TransactionID == nil || *req.TransactionID == "" {
		return nil, nil // Kafka verifies only produces naming their transaction
	}
	if req.Version < 12 && !b.brokerBool(img, "transaction.partition.verification.enable") {
		return nil, nil // the transactions v2 add cannot be turned off
	}
	out := map[txnPartition]verification{}
	var pid int64 = -1
	var epoch int16
	tr := kmsg.NewAddPartitionsToTxnRequestTransaction()
	for _, t := range req.Topics {
		topic := img.Topics[t.Topic]
		var parts []int32
		for _, tp := range t.Partitions {
			if topic == nil || tp.Partition < 0 || int(tp.Partition) >= len(topic.Partitions) {
				continue
			}
			h, err := record.ParseHeader(tp.Records)
			if err != nil || !h.IsTransactional() || h.ProducerID < 0 {
				continue // appendBatch refuses it or it needs no check
			}
			if pid >= 0 && (h.ProducerID != pid || h.ProducerEpoch != epoch) {
				for _, v := range out {
					v.p.CancelTxnVerification(pid, v.guard)
				}
				return nil, errMixedProducers
			}
			pid, epoch = h.ProducerID, h.ProducerEpoch
			p := b.leaderReplica(topic, tp.Partition)
			if p == nil {
				continue // not the leader: refused later
			}
			g := p.StartTxnVerification(h.ProducerID, h.ProducerEpoch)
			out[txnPartition{t.Topic, tp.Partition}] = verification{p: p, guard: g}
			if g != replica.NoVerification {
				parts = append(parts, tp.Partition)
			}
		}
		if len(parts) > 0 {
			tr.Topics = append(tr.Topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: t.Topic, Partitions: parts})
		}
	}
	if len(tr.Topics) == 0 {
		return out, nil
	}
	tr.TransactionalID, tr.ProducerID, tr.ProducerEpoch = *req.TransactionID, pid, epoch
	areq := kmsg.NewPtrAddPartitionsToTxnRequest()
	areq.Version, tr.VerifyOnly = 4, true
	if req.Version >= 12 {
		// transaction.version 2: the produce adds the partition itself.
		areq.Version, tr.VerifyOnly = 5, false
	}
	areq.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tr}
	aresp := b.sendAddPartitionsToTxn(ctx, tr.TransactionalID, areq)
	codes := map[txnPartition]int16{}
	for _, rt := range aresp.Transactions {
		for _, t := range rt.Topics {
			for _, p := range t.Partitions {
				codes[txnPartition{t.Topic, p.Partition}] = p.ErrorCode
			}
		}
	}
	for _, t := range tr.Topics {
		for _, p := range t.Partitions {
			k := txnPartition{t.Topic, p}
			code, ok := codes[k]
			if aresp.ErrorCode != 0 {
				code, ok = aresp.ErrorCode, true
			}
			if !ok {
				code = kerr.UnknownServerError.Code
			}
			v := out[k]
			v.code, v.message = produceVerifyCode(code, req.Version)
			if v.code != 0 {
				v.p.CancelTxnVerification(pid, v.guard)
			}
			out[k] = v
		}
	}
	return out, nil
}

// produceVerifyCode translates a coordinator's answer for one partition
// into the produce's error, as Kafka's ReplicaManager and
// AddPartitionsToTxnManager do.
func produceVerifyCode(code, version int16) (int16, string) {
	switch code {
	case 0:
		return 0, ""
	case kerr.ProducerFenced.Code:
		// Producers expect INVALID_PRODUCER_EPOCH here.
		code = kerr.InvalidProducerEpoch.Code
	case kerr.TransactionAbortable.Code:
		if version < 11 {
			code = kerr.InvalidTxnState.Code // older clients do not know it
		}
	case kerr.ClusterAuthorizationFailed.Code:
		code = kerr.InvalidTxnState.Code
	case kerr.ConcurrentTransactions.Code, kerr.NetworkException.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code, kerr.RequestTimedOut.Code:
		// Retriable for the coordinator, but older clients would not retry
		// them on a produce: NOT_ENOUGH_REPLICAS makes them retry without a
		// metadata refresh.
		return kerr.NotEnoughReplicas.Code, "Unable to verify the partition has been added to the transaction. Underlying error: " +
			kerr.ErrorForCode(code).Error()
	}
	if code == kerr.InvalidTxnState.Code {
		return code, "Partition was not added to the transaction"
	}
	return code, ""
}

// sendAddPartitionsToTxn sends a broker-to-coordinator AddPartitionsToTxn
// (v4+) for transactional id id. The coordinator is the leader of the id's
// __transaction_state partition; on this node the request is handled in
// process by the same code that answers it over the wire, on another it
// goes there through Config.SendToBroker. A coordinator that cannot be
// reached is COORDINATOR_NOT_AVAILABLE for every partition (retried).
func (b *Broker) sendAddPartitionsToTxn(ctx context.Context, id string, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	ctx, cancel := requestTimeout(ctx, 0)
	defer cancel()
	node, _, _, err := b.txnCoordinator(ctx, id)
	if err == nil && node == b.cfg.NodeID {
		return b.addPartitionsToTxn(ctx, req)
	}
	if err == nil && b.cfg.SendToBroker != nil {
		var r kmsg.Response
		if r, err = b.cfg.SendToBroker(ctx, node, req); err == nil {
			return r.(*kmsg.AddPartitionsToTxnResponse)
		}
		b.logger.Debug("transaction verification with a remote coordinator failed", "txn_id", id, "broker", node, "err", err)
	}
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	return resp
}

func (b *Broker) produceErrorCode(err error) int16 {
	switch {
	case errors.Is(err, errMultipleBatches), errors.Is(err, errNoRecords), errors.Is(err, errControlFromClient),
		errors.Is(err, errNullKeyCompacted), errors.Is(err, errTxnNoProducer):
		return kerr.InvalidRecord.Code
	case errors.Is(err, errMixedProducers):
		return kerr.InvalidProducerIDMapping.Code
	}
	return b.errorCode(err)
}

// topicCodec is the codec a topic's compression.type stores batches with;
// false for "producer" (each batch as its producer compressed it).
func topicCodec(cfg config.Topic) (record.Codec, bool) {
	switch cfg.Compression {
	case "uncompressed":
		return record.CodecNone, true
	case "gzip":
		return record.CodecGzip, true
	case "snappy":
		return record.CodecSnappy, true
	case "lz4":
		return record.CodecLZ4, true
	case "zstd":
		return record.CodecZstd, true
	}
	return record.CodecNone, false
}

// isZstd reports whether the batch starting b names zstd.
func isZstd(b []byte) bool {
	c, ok := record.PeekCompression(b)
	return ok && c == record.CodecZstd
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func msDuration(ms int32) time.Duration {
	if ms < 0 {
		ms = 0
	}
	return time.Duration(ms) * time.Millisecond
}
