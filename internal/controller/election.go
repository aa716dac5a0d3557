package controller

import (
	"slices"
	"sort"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Leader election, as Kafka's KRaft controller does it when a broker is
// fenced (session expired or controlled shutdown) or unfenced: one batch
// holds the partition changes and the broker's fencing, so no image ever
// shows a fenced broker leading or a partition led from outside its ISR.
// Only clean election is built: a leader comes from the ISR, never from an
// out-of-sync replica (unclean.leader.election.enable is not honoured).

// fenceRecords fences broker b and, for every partition whose ISR holds it,
// removes it from the ISR; a partition it led gets the first unfenced ISR
// member in replica order as leader. As Kafka, the ISR never becomes empty:
// when b is its last member it stays, and a partition it led is left
// without a leader (offline) until an ISR member returns.
func fenceRecords(img *metadata.Image, b metadata.Broker) []metadata.Record {
	return append(leaveRecords(img, b.NodeID), metadata.FenceBrokerRecord{NodeID: b.NodeID, Epoch: b.Epoch})
}

// leaveRecords are the partition changes of fenceRecords: broker id leaves
// every ISR it is in (but the last member stays) and every leadership it
// holds.
func leaveRecords(img *metadata.Image, id int32) []metadata.Record {
	var recs []metadata.Record
	b := metadata.Broker{NodeID: id}
	eligible := func(id int32) bool {
		nb, ok := img.Brokers[id]
		return id != b.NodeID && ok && !nb.Fenced
	}
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			if !slices.Contains(p.ISR, b.NodeID) {
				continue
			}
			isr := slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return id == b.NodeID })
			if len(isr) == 0 {
				isr = p.ISR
			}
			leader := p.Leader
			if leader == b.NodeID {
				leader = electLeader(p.Replicas, isr, eligible)
			}
			if leader == p.Leader && slices.Equal(isr, p.ISR) {
				continue
			}
			rec := metadata.PartitionChangeRecord{TopicID: t.ID, Partition: p.Partition}
			if !slices.Equal(isr, p.ISR) {
				rec.ISR = slices.Clone(isr)
			}
			if leader != p.Leader {
				rec.Leader = &leader
			}
			recs = append(recs, rec)
		}
	}
	return recs
}

// unfenceRecords unfences broker b and elects a leader for every offline
// partition whose ISR holds it (Kafka's handleBrokerUnfenced), so a
// partition whose last ISR member went away serves again when it returns.
func unfenceRecords(img *metadata.Image, b metadata.Broker) []metadata.Record {
	var recs []metadata.Record
	eligible := func(id int32) bool {
		nb, ok := img.Brokers[id]
		return id == b.NodeID || (ok && !nb.Fenced)
	}
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			if p.Leader != metadata.NoLeader || !slices.Contains(p.ISR, b.NodeID) {
				continue
			}
			leader := electLeader(p.Replicas, p.ISR, eligible)
			if leader == metadata.NoLeader {
				continue
			}
			recs = append(recs, metadata.PartitionChangeRecord{TopicID: t.ID, Partition: p.Partition, Leader: &leader})
		}
	}
	// The unfencing first: the batch is validated record by record.
	return append([]metadata.Record{metadata.UnfenceBrokerRecord{NodeID: b.NodeID, Epoch: b.Epoch}}, recs...)
}

// electLeader is Kafka's default (clean) election: the first replica, in
// replica order, that is in the ISR and eligible; NoLeader when none is.
func electLeader(replicas, isr []int32, eligible func(int32) bool) int32 {
	for _, id := range replicas {
		if slices.Contains(isr, id) && eligible(id) {
			return id
		}
	}
	return metadata.NoLeader
}

// sortedTopics orders the topics by name, so a batch is the same whichever
// way the map is iterated.
func sortedTopics(img *metadata.Image) []*metadata.Topic {
	out := make([]*metadata.Topic, 0, len(img.Topics))
	for _, t := range img.Topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
