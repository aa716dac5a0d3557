package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/txn"
)

// The inter-broker client: the requests one broker sends another's Kafka
// listener (WriteTxnMarkers from a transaction coordinator to partition
// leaders, AddPartitionsToTxn verifications from partition leaders and
// group coordinators to a transaction coordinator), kmsg-encoded, to the
// endpoint the broker registered (the metadata image's broker endpoints,
// read at every request, so a restarted broker on a new port is found).
//
// Each peer gets a few connections (peerConns), dialed on first use and
// reused: a Kafka listener answers one connection's requests one after the
// other (Kafka mutes a connection while its request is in flight), and a
// WriteTxnMarkers waits for the high watermark, so a single connection
// would queue every verification to that broker behind it. Kafka, for the
// same reason, gives its marker channel and its AddPartitionsToTxn manager
// network clients of their own. Nodes of one cluster run the same version,
// so requests go at fixed versions without an ApiVersions round trip.

const (
	// peerConns bounds the connections (and requests in flight) from this
	// broker to each other broker; more concurrent requests wait.
	peerConns = 4
	// peerRequestTimeout caps one dial and one request when ctx has no
	// earlier deadline: a broker cut off without a reset (a partition, a
	// dead machine) must not hold a transaction's end for the whole request
	// timeout while its partitions' new leaders are reachable, since the
	// coordinator resends to the leaders of the metadata at each attempt.
	peerRequestTimeout = 15 * time.Second
	// peerMaxResponse bounds an answer before it is read: marker and
	// verification answers list partitions and error codes only.
	peerMaxResponse = 16 << 20
	// writeTxnMarkersVersion is the version sent (Kafka 4.0's
	// WriteTxnMarkers is v0-1).
	writeTxnMarkersVersion = 1
)

var errNoPeer = errors.New("node: broker not registered")

type peerClients struct {
	nodeID int32
	image  func() *metadata.Image
	dial   dialFunc // Options.Dial
	logger *slog.Logger

	mu struct {
		sync.Mutex
		pools  map[int32]chan *controllerClient
		closed bool
	}
}

func newPeerClients(nodeID int32, image func() *metadata.Image, dial dialFunc, logger *slog.Logger) *peerClients {
	pc := &peerClients{nodeID: nodeID, image: image, dial: dial, logger: logger.With("component", "inter-broker")}
	pc.mu.pools = map[int32]chan *controllerClient{}
	return pc
}

func (pc *peerClients) pool(broker int32) (chan *controllerClient, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.mu.closed {
		return nil, errors.New("node: inter-broker client closed")
	}
	p := pc.mu.pools[broker]
	if p == nil {
		p = make(chan *controllerClient, peerConns)
		for range peerConns {
			p <- &controllerClient{timeout: peerRequestTimeout, maxResponse: peerMaxResponse, dial: pc.dial,
				clientID: "gregor-broker-" + strconv.Itoa(int(pc.nodeID))}
		}
		pc.mu.pools[broker] = p
	}
	return p, nil
}

// request sends req to broker and returns its answer. A failed connection
// is closed and redialed by the next request.
func (pc *peerClients) request(ctx context.Context, broker int32, req kmsg.Request) (kmsg.Response, error) {
	b, ok := pc.image().Brokers[broker]
	if !ok {
		return nil, fmt.Errorf("%w: %d", errNoPeer, broker)
	}
	addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	p, err := pc.pool(broker)
	if err != nil {
		return nil, err
	}
	var c *controllerClient
	select {
	case c = <-p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { p <- c }()
	resp := req.ResponseKind()
	if err := c.request(ctx, addr, req, resp); err != nil {
		c.close()
		return nil, fmt.Errorf("node: broker %d at %s: %w", broker, addr, err)
	}
	return resp, nil
}

// close closes every connection, waiting for the requests in flight.
func (pc *peerClients) close() {
	pc.mu.Lock()
	pc.mu.closed = true
	pools := pc.mu.pools
	pc.mu.Unlock()
	for _, p := range pools {
		for range peerConns {
			(<-p).close()
		}
	}
}

// writeMarkers is the transaction coordinator's txn.MarkerWriter: one
// WriteTxnMarkers per leader of the marker's partitions, side by side (at
// most one goroutine per broker, waited for), this node's own partitions
// in process through the same handler. Partitions the image no longer has
// are ErrPartitionGone; a partition without a leader, a broker that cannot
// be reached and the retriable answers are errors the coordinator
// retries; fencing answers are txn.ErrMarkerFenced.
func (n *Node) writeMarkers(ctx context.Context, m txn.Marker) map[txn.TopicPartition]error {
	img := n.ctrl.Image()
	out := make(map[txn.TopicPartition]error, len(m.Partitions))
	byLeader := map[int32][]txn.TopicPartition{}
	for _, tp := range m.Partitions {
		t := img.Topics[tp.Topic]
		switch {
		case t == nil || tp.Partition < 0 || int(tp.Partition) >= len(t.Partitions):
			out[tp] = txn.ErrPartitionGone
		case t.Partitions[tp.Partition].Leader < 0:
			out[tp] = kerr.LeaderNotAvailable
		default:
			l := t.Partitions[tp.Partition].Leader
			byLeader[l] = append(byLeader[l], tp)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, tps := range byLeader {
		wg.Go(func() {
			res := n.writeMarkersTo(ctx, leader, m, tps)
			mu.Lock()
			defer mu.Unlock()
			for tp, err := range res {
				out[tp] = err
			}
		})
	}
	wg.Wait()
	return out
}

// writeMarkersTo sends one WriteTxnMarkers for tps to their leader.
func (n *Node) writeMarkersTo(ctx context.Context, leader int32, m txn.Marker, tps []txn.TopicPartition) map[txn.TopicPartition]error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = writeTxnMarkersVersion
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	for _, tp := range tps { // sorted by topic: one entry per topic
		if k := len(rm.Topics); k == 0 || rm.Topics[k-1].Topic != tp.Topic {
			rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			rt.Topic = tp.Topic
			rm.Topics = append(rm.Topics, rt)
		}
		rt := &rm.Topics[len(rm.Topics)-1]
		rt.Partitions = append(rt.Partitions, tp.Partition)
	}
	req.Markers = []kmsg.WriteTxnMarkersRequestMarker{rm}

	out := make(map[txn.TopicPartition]error, len(tps))
	var resp *kmsg.WriteTxnMarkersResponse
	if leader == n.cfg.NodeID {
		resp = n.broker.WriteTxnMarkers(ctx, req)
	} else {
		r, err := n.peers.request(ctx, leader, req)
		if err != nil {
			for _, tp := range tps {
				out[tp] = err
			}
			return out
		}
		resp = r.(*kmsg.WriteTxnMarkersResponse)
	}
	for _, mr := range resp.Markers {
		if mr.ProducerID != m.ProducerID {
			continue
		}
		for _, t := range mr.Topics {
			for _, p := range t.Partitions {
				out[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = markerError(p.ErrorCode)
			}
		}
	}
	return out
}

// markerError classifies a partition's WriteTxnMarkers answer as Kafka's
// TransactionMarkerRequestCompletionHandler does.
func markerError(code int16) error {
	err := kerr.ErrorForCode(code)
	switch code {
	case 0:
		return nil
	case kerr.InvalidProducerEpoch.Code, kerr.TransactionCoordinatorFenced.Code:
		return fmt.Errorf("%w: %w", txn.ErrMarkerFenced, err)
	case kerr.UnsupportedForMessageFormat.Code, kerr.UnsupportedVersion.Code:
		// The producer could not have written there either.
		return fmt.Errorf("%w: %w", txn.ErrPartitionGone, err)
	}
	return err
}
