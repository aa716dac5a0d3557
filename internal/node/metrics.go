package node

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// collector reads partition and connection state at scrape time, so the
// produce and fetch paths pay nothing for metrics.
type collector struct {
	n *Node

	logEnd, logStart, hw, size *prometheus.Desc
	conns, accepted, requests  *prometheus.Desc
	isController               *prometheus.Desc
	groupCommitted, groupLag   *prometheus.Desc
	fetchSessions              *prometheus.Desc
	leaseExpired               *prometheus.Desc
}

func newCollector(n *Node) *collector {
	labels := []string{"topic", "partition"}
	return &collector{
		n:             n,
		logEnd:        prometheus.NewDesc("gregor_partition_log_end_offset", "Offset the next record appended to the partition gets.", labels, nil),
		logStart:      prometheus.NewDesc("gregor_partition_log_start_offset", "First offset still in the partition's log.", labels, nil),
		hw:            prometheus.NewDesc("gregor_partition_high_watermark", "Offset below which records are committed and visible.", labels, nil),
		size:          prometheus.NewDesc("gregor_partition_size_bytes", "Bytes the partition's segments hold on disk.", labels, nil),
		conns:         prometheus.NewDesc("gregor_connections_open", "Open Kafka client connections.", nil, nil),
		accepted:      prometheus.NewDesc("gregor_connections_accepted_total", "Kafka client connections accepted.", nil, nil),
		requests:      prometheus.NewDesc("gregor_requests_total", "Kafka requests handled.", nil, nil),
		isController:  prometheus.NewDesc("gregor_controller_active", "1 when this node is the active controller.", nil, nil),
		fetchSessions: prometheus.NewDesc("gregor_fetch_sessions", "Open incremental fetch sessions (KIP-227).", nil, nil),
		leaseExpired: prometheus.NewDesc("gregor_broker_lease_expired",
			"1 while the broker lease has run out (no unfenced heartbeat answer for the lease time): partitions it leads are not served.", nil, nil),
		groupCommitted: prometheus.NewDesc("gregor_group_committed_offset", "Offset a consumer group committed for a partition.",
			[]string{"group", "topic", "partition"}, nil),
		groupLag: prometheus.NewDesc("gregor_group_lag", "Log end offset minus the group's committed offset.",
			[]string{"group", "topic", "partition"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logEnd, c.logStart, c.hw, c.size, c.conns, c.accepted, c.requests, c.isController, c.groupCommitted, c.groupLag, c.fetchSessions, c.leaseExpired} {
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
	if c.n.kafka != nil { // a controller-only node has no client listener
		st := c.n.kafka.Stats()
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.OpenConnections))
		ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.AcceptedConnections))
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.RequestsServed))
	}
	active := 0.0
	if c.n.ctrl.IsActive() {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(c.isController, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(c.fetchSessions, prometheus.GaugeValue, float64(c.n.broker.FetchSessions()))
	expired := 0.0
	if !c.n.lease.held() {
		expired = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leaseExpired, prometheus.GaugeValue, expired)
	if c.n.groups != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, r := range c.n.groups.Lag(ctx) {
			part := strconv.Itoa(int(r.Partition))
			ch <- prometheus.MustNewConstMetric(c.groupCommitted, prometheus.GaugeValue, float64(r.Committed), r.Group, r.Topic, part)
			if r.Lag >= 0 {
				ch <- prometheus.MustNewConstMetric(c.groupLag, prometheus.GaugeValue, float64(r.Lag), r.Group, r.Topic, part)
			}
		}
	}
}

// requestMetrics is a latency histogram per Kafka API. The children are
// resolved once per advertised key, so observing a request is an array index
// and an atomic add, not a label lookup.
type requestMetrics struct {
	vec   *prometheus.HistogramVec
	byKey [maxAPIKey + 1]prometheus.Observer
}

// maxAPIKey bounds the API keys with their own histogram child.
const maxAPIKey = 127

func newRequestMetrics(keys []kmsg.ApiVersionsResponseApiKey) *requestMetrics {
	m := &requestMetrics{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gregor_request_duration_seconds",
		Help:    "Time from reading a Kafka request to writing its response, by API (includes long polls and fsync waits).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"api"})}
	keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: 18})
	for _, k := range keys {
		if k.ApiKey >= 0 && k.ApiKey <= maxAPIKey {
			m.byKey[k.ApiKey] = m.vec.WithLabelValues(kmsg.NameForKey(k.ApiKey))
		}
	}
	return m
}

func (m *requestMetrics) observe(key int16, d time.Duration) {
	if key >= 0 && key <= maxAPIKey {
		if o := m.byKey[key]; o != nil {
			o.Observe(d.Seconds())
		}
	}
}
