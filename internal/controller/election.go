package controller

import (
	"slices"
	"sort"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Leader election, as Kafka's KRaft controller does it (PartitionChangeBuilder)
// when a broker is fenced (session expired or controlled shutdown) or
// unfenced: one batch holds the partition changes and the broker's fencing,
// so no image ever shows a fenced broker leading or a partition led from
// outside its ISR.
//
// A clean election picks the first replica, in replica order, that is in the
// ISR and on an unfenced broker. When there is none and the topic's
// unclean.leader.election.enable is true (topic config, else the dynamic
// config of the controller's broker or the cluster default, else the static
// property, else false), an unclean election picks the first unfenced
// replica outside the ISR and makes it the whole ISR: records the old ISR
// had and it lacks are lost, which is what the option accepts. Besides
// fencing and unfencing, the active controller looks for offline
// partitions it may elect uncleanly at every session check (so enabling the
// option on an offline topic takes effect within a second or so; Kafka
// checks every five minutes), and ElectLeaders (elect.go) elects on demand.

// uncleanFunc reports whether unclean election is enabled for a topic.
type uncleanFunc func(t *metadata.Topic) bool

// noUnclean is the uncleanFunc of a cluster that never elects uncleanly.
func noUnclean(*metadata.Topic) bool { return false }

// eligibleFunc reports whether a broker may lead (registered and unfenced,
// in the image the decision will apply to).
type eligibleFunc func(id int32) bool

// fenceRecords fences broker b and, for every partition whose ISR holds it,
// removes it from the ISR; a partition it led gets the first unfenced ISR
// member in replica order as leader. As Kafka, the ISR never becomes empty:
// when b is its last member it stays, and a partition it led is left
// without a leader (offline) until an ISR member returns, or, with unclean
// election enabled, gets an unfenced out-of-sync replica.
func fenceRecords(img *metadata.Image, b metadata.Broker, unclean uncleanFunc) []metadata.Record {
	return append(leaveRecords(img, b.NodeID, unclean), metadata.FenceBrokerRecord{NodeID: b.NodeID, Epoch: b.Epoch})
}

// leaveRecords are the partition changes of fenceRecords: broker id leaves
// every ISR it is in (but the last member stays) and every leadership it
// holds.
func leaveRecords(img *metadata.Image, id int32, unclean uncleanFunc) []metadata.Record {
	var recs []metadata.Record
	eligible := func(r int32) bool {
		nb, ok := img.Brokers[r]
		return r != id && ok && !nb.Fenced
	}
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			if !slices.Contains(p.ISR, id) {
				continue
			}
			isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			if len(isr) == 0 {
				isr = p.ISR
			}
			leader := p.Leader
			if leader == id || leader == metadata.NoLeader {
				leader = electLeader(p.Replicas, isr, eligible)
				if leader == metadata.NoLeader && unclean(t) {
					if u := electUnclean(p.Replicas, eligible); u != metadata.NoLeader {
						leader, isr = u, []int32{u}
					}
				}
			}
			if rec, ok := changeRecord(t, p, leader, isr); ok {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// unfenceRecords unfences broker b and elects a leader for every offline
// partition it is a replica of (Kafka's handleBrokerUnfenced): from the ISR
// when it holds b, so a partition whose last ISR member went away serves
// again when it returns, or uncleanly when the topic allows it.
func unfenceRecords(img *metadata.Image, b metadata.Broker, unclean uncleanFunc) []metadata.Record {
	var recs []metadata.Record
	eligible := func(id int32) bool {
		nb, ok := img.Brokers[id]
		return id == b.NodeID || (ok && !nb.Fenced)
	}
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			if p.Leader != metadata.NoLeader || !slices.Contains(p.Replicas, b.NodeID) {
				continue
			}
			leader, isr := electOnline(t, p, eligible, unclean)
			if rec, ok := changeRecord(t, p, leader, isr); ok {
				recs = append(recs, rec)
			}
		}
	}
	// The unfencing first: the batch is validated record by record.
	return append([]metadata.Record{metadata.UnfenceBrokerRecord{NodeID: b.NodeID, Epoch: b.Epoch}}, recs...)
}

// uncleanSweepRecords elects a leader for every offline partition of a
// topic with unclean election enabled that has an unfenced replica.
func uncleanSweepRecords(img *metadata.Image, unclean uncleanFunc) []metadata.Record {
	var recs []metadata.Record
	eligible := brokerEligible(img)
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			if p.Leader != metadata.NoLeader || !unclean(t) {
				continue
			}
			leader, isr := electOnline(t, p, eligible, unclean)
			if rec, ok := changeRecord(t, p, leader, isr); ok {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// brokerEligible is eligibleFunc for img: registered and unfenced.
func brokerEligible(img *metadata.Image) eligibleFunc {
	return func(id int32) bool {
		b, ok := img.Brokers[id]
		return ok && !b.Fenced
	}
}

// electOnline elects a leader for an offline partition: clean from the ISR,
// else unclean when the topic allows it (the leader becomes the ISR). It
// returns NoLeader and the ISR unchanged when nobody can lead.
func electOnline(t *metadata.Topic, p metadata.Partition, eligible eligibleFunc, unclean uncleanFunc) (int32, []int32) {
	if l := electLeader(p.Replicas, p.ISR, eligible); l != metadata.NoLeader {
		return l, p.ISR
	}
	if unclean(t) {
		if l := electUnclean(p.Replicas, eligible); l != metadata.NoLeader {
			return l, []int32{l}
		}
	}
	return metadata.NoLeader, p.ISR
}

// changeRecord is the PartitionChange that moves p to leader and isr; ok is
// false when nothing changes.
func changeRecord(t *metadata.Topic, p metadata.Partition, leader int32, isr []int32) (metadata.PartitionChangeRecord, bool) {
	if leader == p.Leader && slices.Equal(isr, p.ISR) {
		return metadata.PartitionChangeRecord{}, false
	}
	rec := metadata.PartitionChangeRecord{TopicID: t.ID, Partition: p.Partition}
	if !slices.Equal(isr, p.ISR) {
		rec.ISR = slices.Clone(isr)
	}
	if leader != p.Leader {
		rec.Leader = &leader
	}
	return rec, true
}

// electLeader is Kafka's default (clean) election: the first replica, in
// replica order, that is in the ISR and eligible; NoLeader when none is.
func electLeader(replicas, isr []int32, eligible eligibleFunc) int32 {
	for _, id := range replicas {
		if slices.Contains(isr, id) && eligible(id) {
			return id
		}
	}
	return metadata.NoLeader
}

// electUnclean is Kafka's unclean election: the first eligible replica in
// replica order, in the ISR or not.
func electUnclean(replicas []int32, eligible eligibleFunc) int32 {
	for _, id := range replicas {
		if eligible(id) {
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
