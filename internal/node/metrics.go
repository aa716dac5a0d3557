package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reads partition and connection state at scrape time, so the
// produce and fetch paths pay nothing for metrics.
type collector struct {
	n *Node

	logEnd, logStart, hw, size *prometheus.Desc
	conns, accepted, requests  *prometheus.Desc
	isController               *prometheus.Desc
}

func newCollector(n *Node) *collector {
	labels := []string{"topic", "partition"}
	return &collector{
		n:            n,
		logEnd:       prometheus.NewDesc("gregor_partition_log_end_offset", "Offset the next record appended to the partition gets.", labels, nil),
		logStart:     prometheus.NewDesc("gregor_partition_log_start_offset", "First offset still in the partition's log.", labels, nil),
		hw:           prometheus.NewDesc("gregor_partition_high_watermark", "Offset below which records are committed and visible.", labels, nil),
		size:         prometheus.NewDesc("gregor_partition_size_bytes", "Bytes the partition's segments hold on disk.", labels, nil),
		conns:        prometheus.NewDesc("gregor_connections_open", "Open Kafka client connections.", nil, nil),
		accepted:     prometheus.NewDesc("gregor_connections_accepted_total", "Kafka client connections accepted.", nil, nil),
		requests:     prometheus.NewDesc("gregor_requests_total", "Kafka requests handled.", nil, nil),
		isController: prometheus.NewDesc("gregor_controller_active", "1 when this node is the active controller.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logEnd, c.logStart, c.hw, c.size, c.conns, c.accepted, c.requests, c.isController} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.n.replicas.All() {
		part := strconv.Itoa(int(p.Index))
		ch <- prometheus.MustNewConstMetric(c.logEnd, prometheus.GaugeValue, float64(p.LogEndOffset()), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(c.logStart, prometheus.GaugeValue, float64(p.LogStartOffset()), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(p.HighWatermark()), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.Size()), p.Topic, part)
	}
	st := c.n.kafka.Stats()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.OpenConnections))
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.AcceptedConnections))
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.RequestsServed))
	active := 0.0
	if c.n.ctrl.IsActive() {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(c.isController, prometheus.GaugeValue, active)
}
