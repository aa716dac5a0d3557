package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Faults on a three-process cluster (RF=3, min.insync.replicas=2) under an
// idempotent acks=all franz-go producer. Each test checks what Kafka's
// replication system tests check, and more: every acknowledged record is
// read back exactly once, at the offset its acknowledgement named, in order
// (checkAcked); the three replicas' logs are byte-identical; and writes
// resume within failoverBound of a leader's kill.

// fastFailover are the timeouts of the fault tests: a broker is fenced 2 s
// after its last heartbeat.
var fastFailover = []string{"broker.session.timeout.ms=2000", "broker.heartbeat.interval.ms=500"}

// failoverBound is how soon after a leader's kill the first write must be
// acknowledged again with broker.session.timeout.ms=2000: the session, a
// Raft commit, the brokers applying it and the client's metadata refresh
// and retry (docs/replication.md "Failover time" has the measured figures,
// about 3 s; the bound leaves room for a loaded machine).
const failoverBound = 2*time.Second + 6*time.Second

// ack is one acknowledged record: its value, the offset the broker named,
// when its produce was first sent and when the acknowledgement arrived.
type ack struct {
	value    string
	offset   int64
	sent, at time.Time
}

// javaRetries are the Java client's retry settings (retry.backoff.ms 100,
// metadata refreshed on a leader error after the same backoff), in place of
// franz-go's (exponential backoff from 250 ms to 5 s, metadata at most
// every 5 s): with franz-go's, the time writes take to resume after a
// failover is mostly the client's backoff, not the cluster's election.
func javaRetries() []kgo.Opt {
	return []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.MetadataMinAge(100 * time.Millisecond)}
}

// stream is a producer writing values prefix0, prefix1, ... in batches of
// five, one batch in flight, until stopped; it records every
// acknowledgement.
type stream struct {
	cl     *kgo.Client
	prefix string
	stop   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	acks []ack
	err  error
}

func startStream(t *testing.T, c *replicatedCluster, prefix string) *stream {
	t.Helper()
	s := &stream{prefix: prefix, stop: make(chan struct{}), done: make(chan struct{})}
	opts := append([]kgo.Opt{c.seeds, kgo.DefaultProduceTopic(replicatedTopic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(60 * time.Second), kgo.ProducerLinger(0)}, javaRetries()...)
	s.cl = newClient(t, c.procs[int(c.leader)], opts...)
	go s.run()
	t.Cleanup(func() { s.finish(t) })
	return s
}

func (s *stream) run() {
	defer close(s.done)
	next := 0
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		var recs []*kgo.Record
		for range 5 {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s%d", s.prefix, next)})
			next++
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		res := s.cl.ProduceSync(ctx, recs...)
		cancel()
		now := time.Now()
		s.mu.Lock()
		for _, r := range res {
			if r.Err != nil {
				if s.err == nil {
					s.err = fmt.Errorf("produce %q: %w", r.Record.Value, r.Err)
				}
				continue
			}
			s.acks = append(s.acks, ack{string(r.Record.Value), r.Record.Offset, sent, now})
		}
		failed := s.err != nil
		s.mu.Unlock()
		if failed {
			return
		}
	}
}

// ackedAfter counts the acknowledged records first sent after t0 (an
// answer in flight at t0 does not count) and returns when the first was
// acknowledged.
func (s *stream) ackedAfter(t0 time.Time) (n int, first time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acks {
		if a.sent.After(t0) {
			if n == 0 {
				first = a.at
			}
			n++
		}
	}
	return n, first
}

// awaitAcks waits for n acknowledged records sent after t0 and returns how
// long after t0 the first was acknowledged.
func (s *stream) awaitAcks(t *testing.T, t0 time.Time, n int) time.Duration {
	t.Helper()
	var first time.Time
	eventually(t, 60*time.Second, fmt.Sprintf("%d writes acknowledged", n), func() error {
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("producer: %v", err)
		}
		var got int
		got, first = s.ackedAfter(t0)
		if got < n {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
	return first.Sub(t0)
}

// finish stops the producer and returns its acknowledgements.
func (s *stream) finish(t *testing.T) []ack {
	t.Helper()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("producer: %v", s.err)
	}
	return slices.Clone(s.acks)
}

// checkAcked waits for byte-identical replicas and reads the partition
// from node from: exactly the acknowledged values, in order, each at the
// offset its acknowledgement named.
func (c *replicatedCluster) checkAcked(t *testing.T, from int, acks []ack) {
	t.Helper()
	want := make([]string, len(acks))
	for i, a := range acks {
		want[i] = a.value
	}
	c.checkReplicas(t, from, want)
	for i, r := range readAll(t, c.procs[from], replicatedTopic) {
		if r.Offset != acks[i].offset {
			t.Fatalf("%q is at offset %d, its acknowledgement said %d", r.Value, r.Offset, acks[i].offset)
		}
	}
}

// isr is partition 0's ISR as the live node p reports it.
func (c *replicatedCluster) isr(t *testing.T, p *proc) ([]int32, error) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, p))
	defer adm.Close()
	md, err := adm.Metadata(testCtx(t, 5*time.Second), replicatedTopic)
	if err != nil {
		return nil, err
	}
	pm := md.Topics[replicatedTopic].Partitions[0]
	if pm.Err != nil {
		return nil, pm.Err
	}
	isr := slices.Clone(pm.ISR)
	slices.Sort(isr)
	return isr, nil
}

// awaitISR waits until the leader reports ISR want (sorted).
func (c *replicatedCluster) awaitISR(t *testing.T, want ...int32) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("ISR %v", want), func() error {
		isr, err := c.isr(t, c.procs[int(c.leader)])
		if err != nil {
			return err
		}
		if !slices.Equal(isr, want) {
			return fmt.Errorf("ISR %v", isr)
		}
		return nil
	})
}

// controller is the active controller the live node p names.
func controllerOf(t *testing.T, p *proc) int32 {
	t.Helper()
	var id int32
	eventually(t, 15*time.Second, "an active controller", func() error {
		v, err := viewCluster(p.kafkaAddr)
		if err != nil {
			return err
		}
		if v.controller < 1 {
			return fmt.Errorf("controller %d", v.controller)
		}
		id = v.controller
		return nil
	})
	return id
}

// hardBounce kills the partition's leader with SIGKILL kills times under
// the stream, restarting it and waiting for the full ISR before the next
// kill (Kafka's hard-bounce replication test), and returns the time from
// each kill to the first acknowledged write after it.
func hardBounce(t *testing.T, c *replicatedCluster, s *stream, kills int) []time.Duration {
	t.Helper()
	s.awaitAcks(t, time.Time{}, 50)
	var resumed []time.Duration
	for round := range kills {
		old := c.leader
		killed := time.Now()
		c.procs[int(old)].kill()
		d := s.awaitAcks(t, killed, 1)
		resumed = append(resumed, d)
		c.leader = c.awaitLeader(t, old)
		t.Logf("kill %d: leader %d killed, broker %d leads, writes resumed after %v", round+1, old, c.leader, d.Round(time.Millisecond))
		p := c.start(int(old))
		p.awaitStarted(t)
		waitReady(t, p)
		c.awaitISR(t, 1, 2, 3)
		s.awaitAcks(t, time.Now(), 20)
	}
	return resumed
}

// TestE2EFaultsHardBounce: the partition's leader is killed with SIGKILL
// five times in a row while the producer writes; each time a new leader
// is elected from the ISR, writes resume within failoverBound, and the
// killed broker restarts, truncates what it alone had and rejoins the ISR.
func TestE2EFaultsHardBounce(t *testing.T) {
	c := startReplicatedCluster(t, fastFailover...)
	s := startStream(t, c, "v-")
	for i, d := range hardBounce(t, c, s, 5) {
		if d > failoverBound {
			t.Errorf("kill %d: writes resumed after %v, more than %v", i+1, d, failoverBound)
		}
	}
	c.checkAcked(t, int(c.leader), s.finish(t))
}

// TestE2EFaultsControllerKilled: the active controller is killed with
// SIGKILL while topics are created and deleted through every broker and the
// producer writes. Another voter takes over; every create and delete
// completes (forwarded to whichever controller is active: no broker loops
// on NOT_CONTROLLER), and no acknowledged record is lost.
func TestE2EFaultsControllerKilled(t *testing.T) {
	c := startReplicatedCluster(t, fastFailover...)
	s := startStream(t, c, "v-")
	ctrl := controllerOf(t, c.procs[1])

	// Admin operations through a client that knows all three brokers. A
	// retried create whose first attempt the old controller committed
	// answers TOPIC_ALREADY_EXISTS, a retried delete UNKNOWN_TOPIC, as in
	// Kafka: both count as done.
	adm := kadm.NewClient(newClient(t, c.procs[1], c.seeds, kgo.RetryTimeout(30*time.Second)))
	var (
		mu       sync.Mutex
		done     []time.Time
		adminErr error
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("admin-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			_, err := adm.CreateTopic(ctx, 1, 1, nil, name)
			if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
				var resp kadm.DeleteTopicResponses
				resp, err = adm.DeleteTopics(ctx, name)
				if err == nil {
					err = resp.Error()
				}
				if errors.Is(err, kerr.UnknownTopicOrPartition) {
					err = nil
				}
			}
			cancel()
			mu.Lock()
			if err != nil {
				adminErr = fmt.Errorf("create and delete %s: %w", name, err)
				mu.Unlock()
				return
			}
			done = append(done, time.Now())
			mu.Unlock()
		}
	}()
	adminAfter := func(t0 time.Time, n int) {
		t.Helper()
		eventually(t, 60*time.Second, fmt.Sprintf("%d admin rounds", n), func() error {
			mu.Lock()
			defer mu.Unlock()
			if adminErr != nil {
				t.Fatal(adminErr)
			}
			got := 0
			for _, at := range done {
				if at.After(t0) {
					got++
				}
			}
			if got < n {
				return fmt.Errorf("%d of %d", got, n)
			}
			return nil
		})
	}
	adminAfter(time.Time{}, 3)
	s.awaitAcks(t, time.Time{}, 20)

	killed := time.Now()
	c.procs[int(ctrl)].kill()
	var survivor *proc
	for id, p := range c.procs {
		if int32(id) != ctrl {
			survivor = p
			break
		}
	}
	eventually(t, 15*time.Second, "a new active controller", func() error {
		v, err := viewCluster(survivor.kafkaAddr)
		if err != nil {
			return err
		}
		if v.controller < 1 || v.controller == ctrl {
			return fmt.Errorf("controller %d (killed %d)", v.controller, ctrl)
		}
		return nil
	})
	t.Logf("controller %d killed: another took over after %v", ctrl, time.Since(killed).Round(time.Millisecond))
	adminAfter(killed, 5)
	if ctrl == c.leader {
		c.leader = c.awaitLeader(t, ctrl)
	}
	s.awaitAcks(t, killed, 20)

	p := c.start(int(ctrl))
	p.awaitStarted(t)
	waitReady(t, p)
	adminAfter(time.Now(), 2)
	close(stop)
	<-stopped
	mu.Lock()
	if adminErr != nil {
		t.Fatal(adminErr)
	}
	mu.Unlock()
	// Every topic the loop created it deleted: none is left, on any node.
	for id, p := range c.procs {
		eventually(t, 15*time.Second, fmt.Sprintf("no admin topic left on node %d", id), func() error {
			md, err := kadm.NewClient(newClient(t, p)).Metadata(testCtx(t, 5*time.Second))
			if err != nil {
				return err
			}
			for name := range md.Topics {
				if strings.HasPrefix(name, "admin-") {
					return fmt.Errorf("topic %s still exists", name)
				}
			}
			return nil
		})
	}
	c.awaitISR(t, 1, 2, 3)
	c.checkAcked(t, int(c.leader), s.finish(t))
}

// TestE2EFaultsFollowerStopped: a follower is stopped with SIGSTOP for
// longer than replica.lag.time.max.ms: the leader drops it from the ISR
// (AlterPartition) and keeps acknowledging with the two others; continued
// with SIGCONT, it catches up and rejoins the ISR.
func TestE2EFaultsFollowerStopped(t *testing.T) {
	const lagMax = 1500 * time.Millisecond
	c := startReplicatedCluster(t, "replica.lag.time.max.ms=1500")
	s := startStream(t, c, "v-")
	s.awaitAcks(t, time.Time{}, 20)
	ctrl := controllerOf(t, c.procs[int(c.leader)])
	var follower int32
	for id := int32(1); id <= 3; id++ {
		if id != c.leader && id != ctrl {
			follower = id
		}
	}
	if follower == 0 { // the leader is the controller
		follower = c.leader%3 + 1
	}
	fp := c.procs[int(follower)]
	if err := fp.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	cont := func() { _ = fp.cmd.Process.Signal(syscall.SIGCONT) }
	t.Cleanup(cont)
	var rest []int32
	for id := int32(1); id <= 3; id++ {
		if id != follower {
			rest = append(rest, id)
		}
	}
	c.awaitISR(t, rest...)
	t.Logf("follower %d stopped: left the ISR after %v", follower, time.Since(stoppedAt).Round(time.Millisecond))
	shrunk := time.Now()
	s.awaitAcks(t, shrunk, 20)
	if d := time.Since(stoppedAt); d <= lagMax {
		t.Fatalf("the follower left the ISR %v after it stopped, within replica.lag.time.max.ms", d)
	}
	cont()
	c.awaitISR(t, 1, 2, 3)
	s.awaitAcks(t, time.Now(), 20)
	c.checkAcked(t, int(c.leader), s.finish(t))
}

// TestE2EFaultsDivergentTail: the leader writes a batch no follower
// fetched (both followers are stopped with SIGSTOP, and the batch is
// written once their parked fetches were answered; the acks=all produce
// times out unacknowledged),
// then it is killed with SIGKILL and the followers continue. A follower is
// elected and takes new writes; the old leader, restarted, truncates the
// batch only it had: it is nowhere, and the logs are byte-identical.
func TestE2EFaultsDivergentTail(t *testing.T) {
	// A 4 s session: the followers are stopped for about two seconds.
	c := startReplicatedCluster(t, "broker.session.timeout.ms=4000", "broker.heartbeat.interval.ms=500")
	s := startStream(t, c, "v-")
	s.awaitAcks(t, time.Time{}, 50)
	acked := s.finish(t)

	old := c.leader
	var followers []*proc
	for id, p := range c.procs {
		if int32(id) != old {
			followers = append(followers, p)
		}
	}
	raw := newClient(t, c.procs[int(old)])
	for _, p := range followers {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) })
	}
	// A fetch parked on the leader waits at most 500 ms (the followers'
	// max wait); once it is answered, a stopped follower sends no other.
	// Nothing outside the leader shows that its parked fetches were
	// answered, so this waits three times their longest wait: an answer
	// still parked when the batch arrives would carry it to a follower.
	time.Sleep(1500 * time.Millisecond)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 300
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = replicatedTopic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = divergentBatch(t)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := raw.Broker(int(old)).Request(testCtx(t, 10*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code == 0 {
		t.Fatal("the leader acknowledged a batch its stopped followers cannot have")
	}
	c.procs[int(old)].kill()
	for _, p := range followers {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	oldLog, err := partitionLog(filepath.Join(c.dir(int(old)), replicatedTopic+"-0"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(oldLog, []byte("divergent")) {
		t.Fatal("the killed leader's log does not hold the batch only it had")
	}

	c.leader = c.awaitLeader(t, old)
	s2 := startStream(t, c, "w-")
	s2.awaitAcks(t, time.Time{}, 20)
	p := c.start(int(old))
	p.awaitStarted(t)
	waitReady(t, p)
	c.awaitISR(t, 1, 2, 3)
	c.checkAcked(t, int(c.leader), append(acked, s2.finish(t)...))
}

// divergentBatch is one record batch holding the value "divergent".
func divergentBatch(t *testing.T) []byte {
	t.Helper()
	b, err := record.AppendBatch(nil, record.Batch{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		BaseTimestamp: time.Now().UnixMilli(), Records: []record.Record{{Value: []byte("divergent")}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestE2EFailoverMeasure measures the failover time reported in
// docs/replication.md: the median, over five SIGKILLs of the partition's
// leader, of the time from the kill to the first acknowledged acks=all
// write sent after it, with Kafka's default timeouts and with
// broker.session.timeout.ms=2000. It runs only with
// GREGOR_MEASURE_FAILOVER=1 (about two minutes).
func TestE2EFailoverMeasure(t *testing.T) {
	if os.Getenv("GREGOR_MEASURE_FAILOVER") != "1" {
		t.Skip("set GREGOR_MEASURE_FAILOVER=1 to measure failover times")
	}
	for _, tc := range []struct {
		name string
		sets []string
	}{
		{"defaults (broker.session.timeout.ms=9000, broker.heartbeat.interval.ms=2000)", nil},
		{"broker.session.timeout.ms=2000, broker.heartbeat.interval.ms=500", fastFailover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startReplicatedCluster(t, tc.sets...)
			s := startStream(t, c, "v-")
			d := hardBounce(t, c, s, 5)
			c.checkAcked(t, int(c.leader), s.finish(t))
			sorted := slices.Clone(d)
			slices.Sort(sorted)
			t.Logf("failover with %s: median %v, min %v, max %v (kills: %v)", tc.name,
				sorted[len(sorted)/2].Round(10*time.Millisecond), sorted[0].Round(10*time.Millisecond),
				sorted[len(sorted)-1].Round(10*time.Millisecond), d)
		})
	}
}
