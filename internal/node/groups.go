package node

import (
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/statelog"
	"github.com/gregor-dev/gregor/internal/txn"
)

// newGroupCoordinator builds the group coordinator from the broker
// properties (read once: changing them needs a restart).
func newGroupCoordinator(nodeID int32, p map[string]string, ctrl *controller.Controller, replicas *replica.Manager, logger *slog.Logger) *group.Coordinator {
	ms := func(name string, def int64) time.Duration {
		return time.Duration(config.Int64(props(p, name), def)) * time.Millisecond
	}
	return group.New(group.Config{
		NumPartitions: int32(config.Int64(props(p, "offsets.topic.num.partitions"), 50)),
		Limits: group.Limits{
			MinSessionTimeout:      ms("group.min.session.timeout.ms", 6000),
			MaxSessionTimeout:      ms("group.max.session.timeout.ms", 1800000),
			MaxSize:                int(config.Int64(props(p, "group.max.size"), 1<<31-1)),
			InitialRebalanceDelay:  ms("group.initial.rebalance.delay.ms", 3000),
			MaxMemberMetadataBytes: 1 << 20,
		},
		Consumer: group.ConsumerLimits{
			Disabled:          !slices.Contains(list(props(p, "group.coordinator.rebalance.protocols"), "classic,consumer"), "consumer"),
			SessionTimeout:    ms("group.consumer.session.timeout.ms", 45000),
			HeartbeatInterval: ms("group.consumer.heartbeat.interval.ms", 5000),
			MaxSize:           int(config.Int64(props(p, "group.consumer.max.size"), 1<<31-1)),
			Assignors:         list(props(p, "group.consumer.assignors"), "uniform,range"),
		},
		Image:                  ctrl.Image,
		OffsetsRetention:       time.Duration(config.Int64(props(p, "offsets.retention.minutes"), 10080)) * time.Minute,
		RetentionCheckInterval: ms("offsets.retention.check.interval.ms", 600000),
		MaxOffsetMetadataBytes: int(config.Int64(props(p, "offset.metadata.max.bytes"), 4096)),
		Log:                    func(partition int32) statelog.Log { return stateLog(nodeID, ctrl, replicas, group.Topic, partition) },
		Leads:                  func(partition int32) bool { return imageLeads(nodeID, ctrl, group.Topic, partition) },
		PartitionCount: func(topic string) int32 {
			if t := ctrl.Image().Topics[topic]; t != nil {
				return int32(len(t.Partitions))
			}
			return 0
		},
		LogEndOffset: func(topic string, partition int32) (int64, bool) {
			if part := replicas.Get(topic, partition); part != nil {
				return part.HighWatermark(), true
			}
			return 0, false
		},
		Logger: logger,
	})
}

// list reads a list property: comma-separated, blanks dropped.
func list(v, def string) []string {
	if v == "" {
		v = def
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// newTxnCoordinator builds the transaction coordinator from the broker
// properties (read once: changing them needs a restart).
func newTxnCoordinator(nodeID int32, p map[string]string, ctrl *controller.Controller, replicas *replica.Manager,
	pids *txn.ProducerIDs, groups *group.Coordinator, markers txn.MarkerWriter, logger *slog.Logger) *txn.Coordinator {
	ms := func(name string, def int64) time.Duration {
		return time.Duration(config.Int64(props(p, name), def)) * time.Millisecond
	}
	return txn.New(txn.Config{
		NumPartitions:  int32(config.Int64(props(p, "transaction.state.log.num.partitions"), 50)),
		MaxTimeout:     ms("transaction.max.timeout.ms", 900000),
		AbortInterval:  ms("transaction.abort.timed.out.transaction.cleanup.interval.ms", 10000),
		IDExpiration:   ms("transactional.id.expiration.ms", 604800000),
		RemoveInterval: ms("transaction.remove.expired.transaction.cleanup.interval.ms", 3600000),
		ProducerIDs:    pids,
		Partition: func(topic string, partition int32) *replica.Partition {
			part := replicas.Get(topic, partition)
			if part == nil {
				return nil
			}
			t := ctrl.Image().Topics[topic]
			if t == nil || int(partition) >= len(t.Partitions) || t.Partitions[partition].Leader != nodeID {
				return nil
			}
			return part
		},
		// Markers go to every partition's leader as WriteTxnMarkers; the
		// leader of a __consumer_offsets partition applies them to its
		// groups' transactional offsets.
		WriteMarkers: markers,
		Log:          func(partition int32) statelog.Log { return stateLog(nodeID, ctrl, replicas, txn.Topic, partition) },
		Leads:        func(partition int32) bool { return imageLeads(nodeID, ctrl, txn.Topic, partition) },
		GroupPartition: func(g string) txn.TopicPartition {
			return txn.TopicPartition{Topic: group.Topic, Partition: group.PartitionFor(g, groups.NumPartitions())}
		},
		Logger: logger,
	})
}

// imageLeads reports whether this node's metadata image names it the leader
// of a coordinator's state partition.
func imageLeads(nodeID int32, ctrl *controller.Controller, topic string, partition int32) bool {
	t := ctrl.Image().Topics[topic]
	return t != nil && int(partition) < len(t.Partitions) && t.Partitions[partition].Leader == nodeID
}

// stateLog is the Log of a coordinator's state partition when this node
// leads it, by the metadata image and by the replica itself (at the image's
// leader epoch or an earlier one of the same unbroken leadership), else nil.
func stateLog(nodeID int32, ctrl *controller.Controller, replicas *replica.Manager, topic string, partition int32) statelog.Log {
	t := ctrl.Image().Topics[topic]
	if t == nil || int(partition) >= len(t.Partitions) {
		return nil
	}
	ip := t.Partitions[partition]
	part := replicas.Get(topic, partition)
	// A replica behind the image on a leader epoch bump (it is applied
	// after the image moved) still leads without a break: its Log is the
	// one loaded, so the coordinator stays loaded. A replica that was
	// deposed meanwhile has another LedSince once it catches up, and the
	// coordinator reloads then (reconcile wakes it).
	if ip.Leader != nodeID || part == nil || part.TopicID != t.ID || part.LeaderEpoch() > ip.LeaderEpoch {
		return nil
	}
	if l := statelog.NewReplica(part); l != nil {
		return l
	}
	return nil
}
