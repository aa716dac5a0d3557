package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/quota"
	"github.com/gregor-dev/gregor/internal/replica"
)

// Replica fetchers: one goroutine per source (leader) broker fetches, with
// Kafka's Fetch API (v12, replica_id = this node, sessionless), every
// partition this node follows from that broker. Each response is applied in
// three steps, in this order because acks=all means "on disk on every ISR
// member" (ARCHITECTURE.md): append the leader's batches unchanged, fsync
// every partition that got records (each partition's append and fsync on
// its own goroutine), then take the leader's high watermark. The next fetch
// is not sent before the fsyncs end: its fetch offsets are what the leader
// counts as replicated, so pipelining it would acknowledge unsynced bytes.
// The new log end reaches the leader only as the next request's fetch
// offset, which is read from the durable offset. The current leader epoch
// of each partition is read at every request, so a leader epoch change
// restarts that partition's fetch from its own log; a divergent tail is cut
// at the diverging epoch the leader answers (Fetch v12+). An answer is
// applied to a partition only while it still follows the same leader in
// the same epoch from the same log end as when the request was built.

const (
	replicaFetchVersion  = 12
	replicaFetchMaxWait  = 500 * time.Millisecond
	replicaFetchMaxBytes = 10 << 20 // replica.fetch.response.max.bytes
	replicaFetchPartMax  = 1 << 20  // replica.fetch.max.bytes; KIP-74 sends a larger first batch whole
	// replicaFetchBackoff is replica.fetch.backoff.ms: the pause after a
	// failed request or a partition error, so a refusing leader is not spun on.
	replicaFetchBackoff = 100 * time.Millisecond
	// replicaFetchMaxResponse bounds a fetch response before it is read:
	// the requested maximum plus one oversized first batch per partition is
	// not knowable, so a generous fixed bound.
	replicaFetchMaxResponse = 128 << 20
	// replicaFetchSlack is how long past its max wait a fetch may go
	// unanswered before the follower gives the connection up and dials
	// again. A network partition made of dropped packets (the chaos runs'
	// blackhole routes) leaves a connection open and the fetch in flight
	// unanswered; TCP retransmits it only after a backoff that grew during
	// the outage. With the 10 s this was, followers fetched nothing for
	// about 4 s after a 3 s isolation of their leader, which shrank its ISR
	// and held acks=all writes (8.4 s recoveries in the soak and CI).
	replicaFetchSlack = 3 * time.Second
)

type replicaFetchers struct {
	nodeID   int32
	dial     dialFunc
	replicas *replica.Manager
	image    func() *metadata.Image
	// throttle and rate are the follower side of replication throttling:
	// a partition follower.replication.throttled.replicas names on this
	// node, while this node is out of its ISR, is left out of the fetches
	// while the throttled bytes' rate is over rate()
	// (follower.replication.throttled.rate), as Kafka's
	// ReplicaFetcherThread leaves it out.
	throttle *quota.Replication
	rate     func() int64
	logger   *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu struct {
		sync.Mutex
		running map[int32]bool
		closed  bool
	}
}

func newReplicaFetchers(nodeID int32, replicas *replica.Manager, image func() *metadata.Image, dial dialFunc,
	throttle *quota.Replication, rate func() int64, logger *slog.Logger) *replicaFetchers {
	f := &replicaFetchers{nodeID: nodeID, replicas: replicas, image: image, dial: dial, throttle: throttle, rate: rate,
		logger: logger.With("component", "replica-fetcher")}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.mu.running = make(map[int32]bool)
	return f
}

// update starts a fetcher for every leader of a partition this node follows
// that has none. A fetcher with nothing left to fetch stops by itself. It is
// called after every reconcile.
func (f *replicaFetchers) update() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return
	}
	for _, leader := range f.replicas.Leaders() {
		if leader == f.nodeID || f.mu.running[leader] {
			continue
		}
		f.mu.running[leader] = true
		f.wg.Go(func() { f.run(leader) })
	}
}

// close stops every fetcher and waits for them.
func (f *replicaFetchers) close() {
	f.mu.Lock()
	f.mu.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// idle stops the fetcher of leader when no partition is followed from it;
// checked under mu so that update cannot miss a fetcher that is stopping.
func (f *replicaFetchers) idle(leader int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.replicas.FollowedFrom(leader)) > 0 {
		return false
	}
	delete(f.mu.running, leader)
	return true
}

func (f *replicaFetchers) run(leader int32) {
	c := &controllerClient{timeout: replicaFetchMaxWait + replicaFetchSlack,
		clientID: fmt.Sprintf("gregor-replica-fetcher-%d", f.nodeID), maxResponse: replicaFetchMaxResponse, dial: f.dial}
	defer c.close()
	logger := f.logger.With("leader", leader)
	for f.ctx.Err() == nil {
		parts := f.replicas.FollowedFrom(leader)
		if len(parts) == 0 {
			if f.idle(leader) {
				return
			}
			continue
		}
		b, ok := f.image().Brokers[leader]
		if !ok {
			f.sleep(replicaFetchBackoff)
			continue
		}
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		backoff, err := f.fetchOnce(c, addr, parts, logger)
		if err != nil {
			c.close()
			logger.Debug("replica fetch failed", "addr", addr, "err", err)
			backoff = true
		}
		if backoff {
			f.sleep(replicaFetchBackoff)
		}
	}
}

func (f *replicaFetchers) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.ctx.Done():
	}
}

// inISR reports whether the image lists node in the ISR of the partition.
func inISR(img *metadata.Image, topic string, partition, node int32) bool {
	t := img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return false
	}
	return slices.Contains(t.Partitions[partition].ISR, node)
}

type fetchedKey struct {
	topic     string
	partition int32
}

// fetchOnce sends one fetch for parts and applies its answer. It reports
// whether a partition failed (the caller backs off). Each partition's
// answer is applied only while the partition is still where the request
// left it (replica.FetchPosition: same leader, leader epoch and log end):
// the answer to a request sent before a leader change or a truncation is
// dropped.
func (f *replicaFetchers) fetchOnce(c *controllerClient, addr string, parts []*replica.Partition, logger *slog.Logger) (bool, error) {
	req := kmsg.NewPtrFetchRequest()
	req.Version = replicaFetchVersion
	req.ReplicaID = f.nodeID
	req.MaxWaitMillis = int32(replicaFetchMaxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = replicaFetchMaxBytes
	req.SessionID, req.SessionEpoch = 0, -1
	type sent struct {
		p         *replica.Partition
		pos       replica.FetchPosition
		throttled bool
	}
	byKey := make(map[fetchedKey]sent, len(parts))
	topicAt := make(map[string]int)
	failed := false
	img := f.image()
	var over *bool // the throttle's state, read once a request and only for a throttled partition
	overRate := func() bool {
		if over == nil {
			v := f.throttle.Exceeded(f.rate())
			over = &v
		}
		return *over
	}
	for _, p := range parts {
		throttled := config.Throttled(p.Config().FollowerThrottled, p.Index, f.nodeID) && !inISR(img, p.Topic, p.Index, f.nodeID)
		if throttled && overRate() {
			continue
		}
		pos, err := p.FollowerPosition()
		if err != nil {
			// Moved on since FollowedFrom, or its fsync failed.
			failed = true
			continue
		}
		byKey[fetchedKey{p.Topic, p.Index}] = sent{p, pos, throttled}
		ti, ok := topicAt[p.Topic]
		if !ok {
			ti = len(req.Topics)
			topicAt[p.Topic] = ti
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = p.Topic, p.TopicID
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.Index
		rp.CurrentLeaderEpoch = pos.LeaderEpoch
		// Only what is on disk is reported: the leader counts it as
		// replicated. FollowerPosition fsynced the whole log first.
		rp.FetchOffset = pos.FetchOffset
		rp.LastFetchedEpoch = pos.LastFetchedEpoch
		rp.LogStartOffset = p.LogStartOffset()
		rp.PartitionMaxBytes = replicaFetchPartMax
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
	}
	if len(byKey) == 0 {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, replicaFetchMaxWait+10*time.Second)
	defer cancel()
	resp := kmsg.NewPtrFetchResponse()
	if err := c.request(ctx, addr, req, resp); err != nil {
		return true, err
	}
	if resp.ErrorCode != 0 {
		return true, kerr.ErrorForCode(resp.ErrorCode)
	}
	type applied struct {
		sent
		hw int64
	}
	type fetchedBatches struct {
		applied
		records []byte
		stale   bool
	}
	var got []applied
	var work []fetchedBatches
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			rp := &t.Partitions[i]
			s, ok := byKey[fetchedKey{t.Topic, rp.Partition}]
			if !ok {
				continue
			}
			p := s.p
			if s.throttled {
				f.throttle.Record(len(rp.RecordBatches))
			}
			if rp.ErrorCode != 0 {
				// NOT_LEADER, FENCED/UNKNOWN_LEADER_EPOCH: the metadata
				// image brings the new leader and epoch; retry after it.
				logger.Debug("replica fetch partition error", "topic", t.Topic, "partition", rp.Partition,
					"err", kerr.ErrorForCode(rp.ErrorCode))
				failed = true
				continue
			}
			if d := rp.DivergingEpoch; d.Epoch >= 0 || d.EndOffset >= 0 {
				if err := p.TruncateFetched(s.pos, d.Epoch, d.EndOffset); err != nil && !errors.Is(err, replica.ErrStaleFetch) {
					logger.Error("truncating a divergent log failed", "topic", t.Topic, "partition", rp.Partition, "err", err)
					failed = true
				}
				continue
			}
			if len(rp.RecordBatches) > 0 {
				work = append(work, fetchedBatches{applied: applied{s, rp.HighWatermark}, records: rp.RecordBatches})
				continue
			}
			got = append(got, applied{s, rp.HighWatermark})
		}
	}
	// Each partition that got records is appended and fsynced on its own
	// goroutine (separate files and locks), so a response spanning many
	// partitions costs about its largest partition's write and fsync, not
	// their sum; nothing of it counts as replicated before its fsync.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range work {
		w := &work[i]
		wg.Go(func() {
			p := w.p
			before := p.LogEndOffset()
			leo, err := p.AppendFetched(w.pos, w.records)
			switch {
			case errors.Is(err, replica.ErrStaleFetch):
				w.stale = true
				return
			case err != nil:
				logger.Error("replicated append failed", "topic", p.Topic, "partition", p.Index, "err", err)
				mu.Lock()
				failed = true
				mu.Unlock()
			}
			if leo > before {
				if err := p.Sync(); err != nil {
					logger.Error("replica fsync failed", "topic", p.Topic, "partition", p.Index, "err", err)
				}
			}
		})
	}
	wg.Wait()
	for _, w := range work {
		if !w.stale {
			got = append(got, w.applied)
		}
	}
	for _, a := range got {
		a.p.SetFetchedHighWatermark(a.pos, a.hw)
	}
	return failed, nil
}
