package node

import (
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// clusterHealth holds the replication and controller metrics, with Kafka's
// meanings (kafka.server ReplicaManager and kafka.controller
// KafkaController, under Gregor's gregor_ prefix):
//
//   - gregor_partitions_under_replicated: partitions this broker leads whose
//     ISR is smaller than their replica set (UnderReplicatedPartitions; as
//     Kafka, the replicas a reassignment is adding do not count);
//   - gregor_partitions_reassigning: partitions this broker leads with a
//     reassignment in progress (ReassigningPartitions);
//   - gregor_partitions_leader: partitions this broker leads (LeaderCount);
//   - gregor_isr_shrinks_total, gregor_isr_expands_total: ISR changes of
//     partitions this broker leads (IsrShrinksPerSec, IsrExpandsPerSec, as
//     counters), seen as metadata records apply: the ones this leader
//     proposed and the ones the controller makes when it fences a
//     follower ("if a broker goes down, ISR for some of the partitions
//     will shrink", as Kafka's monitoring guide puts it);
//   - gregor_partition_max_follower_lag: per partition this broker leads,
//     the messages its furthest-behind replica lacks (the leader-side view
//     of the fetchers' ConsumerLag);
//   - gregor_controller_offline_partitions, gregor_controller_fenced_brokers,
//     gregor_controller_active_brokers: on the active controller only, 0
//     elsewhere (OfflinePartitionsCount, FencedBrokerCount,
//     ActiveBrokerCount);
//   - gregor_metadata_lag: committed metadata log entries not applied yet;
//     gregor_metadata_applied_offset: the last applied entry.
//
// Gauges are read at scrape time; the counters move in the metadata
// subscriber, off the produce and fetch paths.
type clusterHealth struct {
	n                 *Node
	shrinks, expands  atomic.Int64
	underReplicated   *prometheus.Desc
	reassigning       *prometheus.Desc
	leaders           *prometheus.Desc
	shrinksDesc       *prometheus.Desc
	expandsDesc       *prometheus.Desc
	followerLag       *prometheus.Desc
	offline           *prometheus.Desc
	fenced, active    *prometheus.Desc
	metaLag, metaLast *prometheus.Desc
}

func newClusterHealth(n *Node) *clusterHealth {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &clusterHealth{
		n:               n,
		underReplicated: d("gregor_partitions_under_replicated", "Partitions this broker leads whose ISR is smaller than their replica set."),
		leaders:         d("gregor_partitions_leader", "Partitions this broker leads."),
		reassigning:     d("gregor_partitions_reassigning", "Partitions this broker leads with a reassignment in progress."),
		shrinksDesc:     d("gregor_isr_shrinks_total", "ISR shrinks of partitions this broker leads."),
		expandsDesc:     d("gregor_isr_expands_total", "ISR expansions of partitions this broker leads."),
		followerLag:     d("gregor_partition_max_follower_lag", "Messages the furthest-behind replica of a partition this broker leads lacks.", "topic", "partition"),
		offline:         d("gregor_controller_offline_partitions", "Partitions without a leader (active controller only; 0 elsewhere)."),
		fenced:          d("gregor_controller_fenced_brokers", "Registered brokers that are fenced (active controller only; 0 elsewhere)."),
		active:          d("gregor_controller_active_brokers", "Registered brokers that are unfenced (active controller only; 0 elsewhere)."),
		metaLag:         d("gregor_metadata_lag", "Committed metadata log entries this node has not applied yet."),
		metaLast:        d("gregor_metadata_applied_offset", "Offset of the last metadata log entry this node applied."),
	}
}

// observe counts the ISR changes of partitions this broker leads in both
// images.
func (h *clusterHealth) observe(prev, next *metadata.Image) {
	if prev == nil {
		return
	}
	me := h.n.cfg.NodeID
	for id, t := range next.TopicsByID {
		old := prev.TopicsByID[id]
		if old == nil || t == old {
			continue
		}
		for i, p := range t.Partitions {
			if i >= len(old.Partitions) || p.Leader != me || old.Partitions[i].Leader != me {
				continue
			}
			was := old.Partitions[i].ISR
			switch {
			case len(p.ISR) < len(was):
				h.shrinks.Add(1)
			case len(p.ISR) > len(was):
				h.expands.Add(1)
			case !slices.Equal(p.ISR, was):
				h.shrinks.Add(1)
				h.expands.Add(1)
			}
		}
	}
}

func (h *clusterHealth) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.underReplicated, h.reassigning, h.leaders, h.shrinksDesc, h.expandsDesc, h.followerLag,
		h.offline, h.fenced, h.active, h.metaLag, h.metaLast} {
		ch <- d
	}
}

func (h *clusterHealth) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	img := h.n.ctrl.Image()
	me := h.n.cfg.NodeID
	var under, leads, offline, reassigning int
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if p.Leader == metadata.NoLeader {
				offline++
			}
			if p.Leader != me {
				continue
			}
			leads++
			if len(p.ISR) < len(p.Replicas)-len(p.AddingReplicas) {
				under++
			}
			if p.Reassigning() {
				reassigning++
			}
		}
	}
	gauge(h.underReplicated, float64(under))
	gauge(h.leaders, float64(leads))
	gauge(h.reassigning, float64(reassigning))
	ch <- prometheus.MustNewConstMetric(h.shrinksDesc, prometheus.CounterValue, float64(h.shrinks.Load()))
	ch <- prometheus.MustNewConstMetric(h.expandsDesc, prometheus.CounterValue, float64(h.expands.Load()))
	for _, p := range h.n.replicas.All() {
		if lag, ok := p.MaxFollowerLag(); ok {
			gauge(h.followerLag, float64(lag), p.Topic, strconv.Itoa(int(p.Index)))
		}
	}
	var fenced, active int
	if h.n.ctrl.IsActive() {
		for _, b := range img.Brokers {
			if b.Fenced {
				fenced++
			} else {
				active++
			}
		}
	} else {
		offline = 0
	}
	gauge(h.offline, float64(offline))
	gauge(h.fenced, float64(fenced))
	gauge(h.active, float64(active))
	gauge(h.metaLag, float64(h.n.ctrl.MetadataLag()))
	gauge(h.metaLast, float64(h.n.ctrl.AppliedOffset()))
}
