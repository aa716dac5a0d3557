package node

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/replica"
)

// isrUpdater is the leader side of ISR changes: every half
// replica.lag.time.max.ms (at most every second) it asks each partition this
// node leads for the ISR it wants (followers that fell behind leave, ones
// that caught up join: replica.ProposeISR) and sends the changes to the
// active controller in one AlterPartition request (v2: topics by id), with
// this broker's epoch and each partition's leader and partition epochs, so
// that a stale leader's change is refused. The committed ISR comes back
// through the metadata log, like every partition change.
type isrUpdater struct {
	nodeID   int32
	replicas *replica.Manager
	lagMax   time.Duration
	epoch    func() int64 // this broker's epoch; 0 while unregistered
	leader   func() (int32, bool)
	// eligible says whether a broker may join an ISR (KIP-841: registered
	// and not fenced in this node's metadata image).
	eligible func(id int32) bool
	ctrls    *controllers
	logger   *slog.Logger
	client   controllerClient
	// sent remembers the partition epoch of each change sent, so an
	// unanswered or refused one is re-sent only after isrResend.
	sent map[replica.TopicPartition]sentISR
}

type sentISR struct {
	partitionEpoch int32
	at             time.Time
}

// isrResend is the pause before the same change (same partition epoch) is
// sent again.
const isrResend = 2 * time.Second

func newISRUpdater(nodeID int32, replicas *replica.Manager, lagMax time.Duration, epoch func() int64,
	leader func() (int32, bool), eligible func(int32) bool, ctrls *controllers, dial dialFunc, logger *slog.Logger) *isrUpdater {
	u := &isrUpdater{nodeID: nodeID, replicas: replicas, lagMax: lagMax, epoch: epoch, leader: leader, eligible: eligible, ctrls: ctrls,
		logger: logger.With("component", "isr"), sent: make(map[replica.TopicPartition]sentISR)}
	u.client.timeout = 10 * time.Second
	u.client.clientID = "gregor-isr-" + strconv.Itoa(int(nodeID))
	u.client.dial = dial
	return u
}

func (u *isrUpdater) run(ctx context.Context) {
	defer u.client.close()
	interval := max(min(u.lagMax/2, time.Second), 10*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			u.step(ctx, now)
		}
	}
}

func (u *isrUpdater) step(ctx context.Context, now time.Time) {
	if u.replicas.Offline() != nil {
		// An offline broker leads nothing: it must not shrink an ISR
		// to itself while the controller moves leadership away.
		return
	}
	var props []replica.ISRProposal
	parts := make(map[isrKey]*replica.Partition)
	for _, p := range u.replicas.All() {
		prop, ok := p.ProposeISR(now, u.lagMax, u.eligible)
		if !ok {
			continue
		}
		tp := replica.TopicPartition{Topic: prop.Topic, Partition: prop.Partition}
		if s, ok := u.sent[tp]; ok && s.partitionEpoch == prop.PartitionEpoch && now.Sub(s.at) < isrResend {
			continue
		}
		props = append(props, prop)
		parts[isrKey{prop.TopicID, prop.Partition}] = p
	}
	epoch := u.epoch()
	id, ok := u.leader()
	addr, _ := u.ctrls.addr(id)
	if len(props) == 0 || epoch == 0 || !ok || addr == "" {
		return
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.Version = 2
	req.BrokerID, req.BrokerEpoch = u.nodeID, epoch
	topicAt := make(map[[16]byte]int)
	for _, prop := range props {
		ti, ok := topicAt[prop.TopicID]
		if !ok {
			ti = len(req.Topics)
			topicAt[prop.TopicID] = ti
			rt := kmsg.NewAlterPartitionRequestTopic()
			rt.TopicID = prop.TopicID
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewAlterPartitionRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = prop.Partition, prop.LeaderEpoch, prop.PartitionEpoch, prop.ISR
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
		u.sent[replica.TopicPartition{Topic: prop.Topic, Partition: prop.Partition}] = sentISR{prop.PartitionEpoch, now}
		// Before the request leaves: the controller may commit it, and
		// elect a member it adds, without this node ever hearing back.
		parts[isrKey{prop.TopicID, prop.Partition}].ISRProposalSent(prop)
		u.logger.Info("proposing an ISR change", "topic", prop.Topic, "partition", prop.Partition, "isr", prop.ISR,
			"leader_epoch", prop.LeaderEpoch, "partition_epoch", prop.PartitionEpoch)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp := kmsg.NewPtrAlterPartitionResponse()
	if err := u.client.request(ctx, addr, req, resp); err != nil {
		u.client.close()
		u.logger.Warn("AlterPartition failed", "controller", addr, "err", err)
		return
	}
	if resp.ErrorCode != 0 {
		u.logger.Warn("AlterPartition refused", "err", kerr.ErrorForCode(resp.ErrorCode))
		return
	}
	asked := make(map[isrKey]replica.ISRProposal, len(props))
	for _, prop := range props {
		asked[isrKey{prop.TopicID, prop.Partition}] = prop
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			k := isrKey{t.TopidID, p.Partition} // kmsg spells it TopidID
			prop, ok := asked[k]
			if p.ErrorCode != 0 {
				u.logger.Warn("ISR change refused", "partition", p.Partition, "err", kerr.ErrorForCode(p.ErrorCode))
			}
			if !ok {
				continue
			}
			switch p.ErrorCode {
			case 0:
				parts[k].ISRProposalAnswered(prop, true)
			case kerr.IneligibleReplica.Code, kerr.InvalidRequest.Code:
				// Refused at the proposal's partition epoch: nothing
				// was committed.
				parts[k].ISRProposalAnswered(prop, false)
			}
		}
	}
}

type isrKey struct {
	topicID   [16]byte
	partition int32
}
