// Package chaintest runs, for tests, a pipeline of chained exactly-once
// consume-transform-produce stages against a broker and checks its output
// (issue 8). It is shared by the in-process test (internal/node) and the
// crash test on the spawned binary (test/e2e); it imports no gregor package
// and talks to the broker only through franz-go over TCP.
//
// Stage i is a consumer group reading topic chain-i with read_committed and
// writing every record unchanged (same key, same value) to chain-(i+1), one
// transaction per poll with kgo.GroupTransactSession, its offsets committed
// in the same transaction (KIP-98, KIP-447). The input is Keys keys with
// sequence numbers 0..PerKey-1 in the values, so an exact output is every
// key's sequence once and in order. Groups mix eager (range),
// cooperative-sticky and static (KIP-345) members; some leave after a few
// transactions while the others have transactions open, and new ones join.
// Every produced record names its transaction in a header, checked against
// what End reported.
//
// Nothing here is safe for concurrent use except where said; a Chain is
// driven by one test goroutine.
package chaintest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const txnHeader = "txn"

// Config sizes a chain.
type Config struct {
	Addr       string // the broker's Kafka address
	Stages     int
	Keys       int
	PerKey     int
	Partitions int32
	// Restart: a member whose session fails (the broker was killed) is
	// replaced by a new session with the same transactional id, which fences
	// the old one and aborts its open transaction. Without it a failed
	// session fails the test, unless the group only dropped the member
	// (lostMembership, a bounded number of times).
	Restart bool
	// Seeds, when set, are the brokers the clients start from instead of
	// Addr alone (a cluster whose nodes come and go).
	Seeds []string
	// Replicas is the replication factor of the chain's topics (0: 1).
	Replicas int16
	// SessionTimeout is the members' group session timeout (0: 3 s). The
	// broker refuses one below group.min.session.timeout.ms (6 s by
	// default) with INVALID_SESSION_TIMEOUT, so a cluster on defaults
	// needs at least that.
	SessionTimeout time.Duration
}

func (cfg Config) seeds() []string {
	if len(cfg.Seeds) > 0 {
		return cfg.Seeds
	}
	return []string{cfg.Addr}
}

// Topic is the name of stage i's input topic (i = Stages: the output).
func Topic(i int) string { return fmt.Sprintf("chain-%d", i) }

func group(i int) string { return fmt.Sprintf("chain-g%d", i) }

func key(k int) []byte        { return []byte(fmt.Sprintf("k%04d", k)) }
func value(k, seq int) []byte { return []byte(fmt.Sprintf("k%04d:%06d", k, seq)) }

// Chain is a running pipeline.
type Chain struct {
	cfg Config

	mu      sync.Mutex
	outcome map[string]int8   // transaction tag -> 1 committed, -1 aborted, 0 unknown
	read    map[string]string // tag -> where a read_committed consumer first read one of its records
	errs    []string
	lost    []string // sessions the group dropped, each replaced by a new one
	// restarts counts, by error text, the sessions Restart replaced: a
	// chain that makes no progress says why.
	restarts map[string]int
	members  []*member
	stopped  bool            // Stop was called: no member starts any more
	seen     map[string]bool // distinct values of the last topic a read_committed reader saw

	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// Setup creates the chain's topics and produces the input to Topic(0).
func Setup(t testing.TB, cfg Config) *Chain {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.seeds()...), kgo.DefaultProduceTopic(Topic(0)), kgo.RetryTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for s := 0; s <= cfg.Stages; s++ {
		resp, err := adm.CreateTopic(ctx, cfg.Partitions, max(cfg.Replicas, 1), nil, Topic(s))
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create %s: %v", Topic(s), err)
		}
	}
	// The key picks the partition, so every key's sequence is in order.
	recs := make([]*kgo.Record, 0, cfg.Keys*cfg.PerKey)
	for seq := 0; seq < cfg.PerKey; seq++ {
		for k := 0; k < cfg.Keys; k++ {
			recs = append(recs, &kgo.Record{Key: key(k), Value: value(k, seq)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce the input: %v", err)
	}
	return &Chain{cfg: cfg, outcome: map[string]int8{}, read: map[string]string{}, seen: map[string]bool{}, restarts: map[string]int{}}
}

func (c *Chain) fail(format string, args ...any) {
	c.mu.Lock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *Chain) setOutcome(tag string, o int8) {
	c.mu.Lock()
	c.outcome[tag] = o
	c.mu.Unlock()
}

// sawRecord notes that a read_committed consumer was served r.
func (c *Chain) sawRecord(r *kgo.Record) {
	for _, h := range r.Headers {
		if h.Key == txnHeader {
			c.mu.Lock()
			if _, ok := c.read[string(h.Value)]; !ok {
				c.read[string(h.Value)] = fmt.Sprintf("%s[%d]@%d", r.Topic, r.Partition, r.Offset)
			}
			c.mu.Unlock()
		}
	}
}

// memberSpec is one member of a stage's group.
type memberSpec struct {
	name      string // also its transactional id
	opts      []kgo.Opt
	quitAfter int // transactions before it leaves; 0: runs until stopped
}

type member struct {
	stop context.CancelFunc
	done chan struct{}
}

func (c *Chain) startMember(stage int, spec memberSpec) *member {
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{stop: cancel, done: make(chan struct{})}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		cancel()
		close(m.done)
		return m
	}
	c.members = append(c.members, m)
	c.mu.Unlock()
	go func() {
		defer close(m.done)
		n, losses := 0, 0
		for ctx.Err() == nil && (spec.quitAfter == 0 || n < spec.quitAfter) {
			err := c.runSession(ctx, stage, spec, &n)
			if err == nil {
				return
			}
			lost := lostMembership(err)
			if lost {
				losses++
			}
			// A broker that keeps dropping a member is a bug, not a
			// stall: a bounded number of losses is tolerated.
			if !c.cfg.Restart && (!lost || losses > maxLosses) {
				c.fail("%s: %v", spec.name, err)
				return
			}
			c.mu.Lock()
			if lost {
				c.lost = append(c.lost, fmt.Sprintf("%s: %v", spec.name, err))
			} else {
				c.restarts[err.Error()]++
			}
			c.mu.Unlock()
			select { // the broker is restarting, or the group dropped us: retry with a new session
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return m
}

// maxLosses bounds the sessions of one member lostMembership may restart.
const maxLosses = 3

// lostMembership reports whether err is the group telling a member, at a
// poll, that it is no longer in the generation it had: the coordinator
// expired it or moved to a generation it is not in. A coordinator must
// expire a member it has not heard from for a session timeout (3 s here),
// as Kafka does, and under load a member can go unheard that long: a
// stalled process (clients and broker share it), or a Heartbeat queued on
// the client's connection behind a slow request (franz-go sends Heartbeat,
// FindCoordinator and the transactional requests on one connection, and
// the broker answers a connection's requests in order; a FindCoordinator
// that creates __transaction_state was seen taking 4 s under load).
// franz-go has then already dropped the member's partitions and aborts
// the transaction it has open, so a new session with the same
// transactional id (fencing the old producer) is what a real application
// does, as the Restart mode does after a crash.
// Only membership errors of the group session qualify: a fetch, produce or
// transaction error still fails the test, and the exactly-once checks are
// unchanged (a lost member must not duplicate or lose a record).
// FENCED_INSTANCE_ID is not among them: a static member's sessions never
// overlap here, so being fenced would be a broker bug.
func lostMembership(err error) bool {
	var gs *kgo.ErrGroupSession
	if !errors.As(err, &gs) {
		return false
	}
	return errors.Is(gs.Err, kerr.UnknownMemberID) || errors.Is(gs.Err, kerr.IllegalGeneration) ||
		errors.Is(gs.Err, kerr.RebalanceInProgress)
}

// runSession runs one GroupTransactSession of a member until ctx ends, the
// member has run its transactions, or the session fails.
func (c *Chain) runSession(ctx context.Context, stage int, spec memberSpec, n *int) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(c.cfg.seeds()...),
		kgo.TransactionalID(spec.name),
		kgo.ConsumerGroup(group(stage)),
		kgo.ConsumeTopics(Topic(stage)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionTimeout(30 * time.Second),
		kgo.SessionTimeout(c.sessionTimeout()),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.RetryTimeout(20 * time.Second),
	}, spec.opts...)
	if os.Getenv("GREGOR_TEST_LOG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return spec.name + " " })))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer sess.Close()
	out := Topic(stage + 1)
	for ctx.Err() == nil && (spec.quitAfter == 0 || *n < spec.quitAfter) {
		fs := sess.PollRecords(ctx, 300)
		if ctx.Err() != nil {
			return nil // nothing is produced before Begin, so nothing is left open
		}
		var ferr error
		fs.EachError(func(tp string, p int32, err error) {
			// Any other error wins over a lost membership, which
			// would only restart the session.
			if ferr == nil || lostMembership(ferr) {
				ferr = fmt.Errorf("fetch %s[%d]: %w", tp, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		recs := fs.Records()
		for _, r := range recs {
			c.sawRecord(r)
		}
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		tag := spec.name + "#" + strconv.Itoa(*n)
		*n++
		e := kgo.AbortingFirstErrPromise(sess.Client())
		for _, r := range recs {
			sess.Produce(context.Background(), &kgo.Record{Topic: out, Key: r.Key, Value: r.Value,
				Headers: []kgo.RecordHeader{{Key: txnHeader, Value: []byte(tag)}}}, e.Promise())
		}
		c.setOutcome(tag, 0) // unknown until End answers
		committed, err := sess.End(context.Background(), e.Err() == nil)
		switch {
		case err != nil:
			return fmt.Errorf("end %s: %w", tag, err)
		case committed:
			c.setOutcome(tag, 1)
		default:
			c.setOutcome(tag, -1)
		}
	}
	return nil
}

func (c *Chain) sessionTimeout() time.Duration {
	if c.cfg.SessionTimeout > 0 {
		return c.cfg.SessionTimeout
	}
	return 3 * time.Second
}

// RestartErrors returns, by error text, how many sessions Restart replaced
// after an error other than a lost membership; safe for concurrent use.
func (c *Chain) RestartErrors() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.restarts))
	for e, n := range c.restarts {
		out[e] = n
	}
	return out
}

// Start starts every stage's members, the replacements that join later,
// and a read_committed reader of the last topic (Seen).
func (c *Chain) Start() {
	balancers := []struct {
		name string
		opts []kgo.Opt
	}{
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"coop", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
		{"mixed", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
	}
	for s := 0; s < c.cfg.Stages; s++ {
		b := balancers[s%len(balancers)]
		specs := []memberSpec{
			// Quits after a few transactions: its partitions move while the
			// others' transactions are open.
			{name: fmt.Sprintf("s%d-%s-a", s, b.name), opts: b.opts, quitAfter: 3},
			// Static: closing it does not leave the group.
			{name: fmt.Sprintf("s%d-%s-static", s, b.name), opts: append([]kgo.Opt{kgo.InstanceID(fmt.Sprintf("s%d-static", s))}, b.opts...), quitAfter: 5},
			{name: fmt.Sprintf("s%d-%s-b", s, b.name), opts: b.opts},
		}
		if b.name == "mixed" {
			// Eager members with one preferring cooperative-sticky: the group
			// uses range while an eager-only member is in it.
			specs[2].opts = []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer(), kgo.RangeBalancer())}
		}
		var static *member
		for i, sp := range specs {
			m := c.startMember(s, sp)
			if i == 1 {
				static = m
			}
		}
		stage := s
		// A new dynamic member joins while the first ones work, and the
		// static member's successor (same instance id, new transactional
		// id) starts once it is gone, within its session, so it takes its
		// place without a rebalance.
		go func() {
			time.Sleep(time.Duration(300+200*stage) * time.Millisecond)
			c.startMember(stage, memberSpec{name: fmt.Sprintf("s%d-late", stage), opts: specs[0].opts})
		}()
		go func() {
			<-static.done
			c.startMember(stage, memberSpec{name: fmt.Sprintf("s%d-static-2", stage), opts: specs[1].opts})
		}()
	}

	ctx, cancel := context.WithCancel(context.Background())
	c.stopWatch, c.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(c.watchDone)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.cfg.seeds()...), kgo.ConsumeTopics(Topic(c.cfg.Stages)),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			c.fail("watcher: %v", err)
			return
		}
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				c.sawRecord(r)
				c.mu.Lock()
				c.seen[string(r.Value)] = true
				c.mu.Unlock()
			})
		}
	}()
}

// Seen is how many distinct records a read_committed reader of the last
// topic has seen; safe for concurrent use.
func (c *Chain) Seen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// AbortedReads counts the transactions that aborted although a
// read_committed consumer was served one of their records; safe for
// concurrent use.
func (c *Chain) AbortedReads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for tag := range c.read {
		if c.outcome[tag] == -1 {
			n++
		}
	}
	return n
}

// Total is how many records the last topic must hold.
func (c *Chain) Total() int { return c.cfg.Keys * c.cfg.PerKey }

// WaitDone waits until the last topic holds every record (read_committed).
func (c *Chain) WaitDone(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for c.Seen() < c.cfg.Keys*c.cfg.PerKey {
		if time.Now().After(deadline) {
			c.mu.Lock()
			errs := c.errs
			c.mu.Unlock()
			t.Fatalf("%s: %d of %d records committed in %v; member errors: %v", Topic(c.cfg.Stages), c.Seen(), c.cfg.Keys*c.cfg.PerKey, d, errs)
		}
		time.Sleep(20 * time.Millisecond) // polling a counter with a deadline
	}
}

// Stop stops every member (each ends its transaction first) and the reader.
func (c *Chain) Stop() {
	c.mu.Lock()
	c.stopped = true
	ms := append([]*member(nil), c.members...)
	c.mu.Unlock()
	for _, m := range ms {
		m.stop()
		<-m.done
	}
	c.stopWatch()
	<-c.watchDone
}

// Check checks, once every member stopped: no member failed; every topic's
// committed content is exactly the input (each key's sequence once, in
// order); a read_committed fetch returns exactly that content; every record
// of a transaction End reported committed is visible and every record of
// one it reported aborted is not; and no read_committed consumer, during
// the run, was ever served a record of a transaction that aborted.
func (c *Chain) Check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	var committed, aborted int
	for _, o := range c.outcome {
		switch o {
		case 1:
			committed++
		case -1:
			aborted++
		}
	}
	t.Logf("%d transactions committed, %d aborted", committed, aborted)
	for _, l := range c.lost {
		t.Logf("session lost its membership and was restarted: %s", l)
	}
	for _, e := range c.errs {
		t.Errorf("member: %s", e)
	}
	for tag, at := range c.read {
		if c.outcome[tag] == -1 {
			t.Errorf("a read_committed consumer was served %s, a record of transaction %s, which aborted", at, tag)
		}
	}
	c.mu.Unlock()
	for s := 1; s <= c.cfg.Stages; s++ {
		c.checkTopic(t, s)
	}
}

// logRecord is one record of a log as written, control records included.
type logRecord struct {
	offset      int64
	key, value  string
	tag         string
	pid         int64
	control     bool
	commit      bool // control record: COMMIT, else ABORT
	transaction bool
}

// readLog reads every offset below ends of topic's partitions (control
// records kept, so the reader knows when it reached the end).
func (c *Chain) readLog(t testing.TB, topic string, isolation kgo.IsolationLevel, ends map[int32]int64) map[int32][]logRecord {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			offs[p] = kgo.NewOffset().AtStart()
		}
	}
	out := map[int32][]logRecord{}
	if len(offs) == 0 {
		return out
	}
	left := len(offs)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.cfg.seeds()...), kgo.KeepControlRecords(), kgo.FetchIsolationLevel(isolation),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d partitions not read to their end", topic, left)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("read %s[%d]: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			lr := logRecord{offset: r.Offset, key: string(r.Key), value: string(r.Value), pid: r.ProducerID,
				control: r.Attrs.IsControl(), transaction: r.Attrs.IsTransactional()}
			if lr.control {
				// Control record key: version int16, type int16 (0 abort, 1 commit).
				if len(r.Key) < 4 {
					t.Fatalf("%s[%d]@%d: control key %x", topic, r.Partition, r.Offset, r.Key)
				}
				lr.commit = binary.BigEndian.Uint16(r.Key[2:]) == 1
			}
			for _, h := range r.Headers {
				if h.Key == txnHeader {
					lr.tag = string(h.Value)
				}
			}
			out[r.Partition] = append(out[r.Partition], lr)
			if r.Offset == ends[r.Partition]-1 {
				left--
			}
		})
	}
	return out
}

// committedView is what a read_committed reader must see, computed from
// the whole log: a producer's transactional records are visible when its
// next control record is a COMMIT.
func committedView(t testing.TB, log []logRecord) []logRecord {
	t.Helper()
	pending := map[int64][]logRecord{}
	var order []logRecord
	visible := map[int64]bool{}
	for _, r := range log {
		switch {
		case r.control:
			for _, p := range pending[r.pid] {
				visible[p.offset] = r.commit
			}
			delete(pending, r.pid)
		case r.transaction:
			pending[r.pid] = append(pending[r.pid], r)
			order = append(order, r)
		default:
			visible[r.offset] = true
			order = append(order, r)
		}
	}
	for pid, rs := range pending {
		t.Errorf("producer %d left %d records without a marker after every transaction ended", pid, len(rs))
	}
	var out []logRecord
	for _, r := range order {
		if visible[r.offset] {
			out = append(out, r)
		}
	}
	return out
}

func (c *Chain) checkTopic(t testing.TB, stage int) {
	t.Helper()
	topic := Topic(stage)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.cfg.seeds()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = stable.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	hwm := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		hwm[o.Partition] = o.Offset
		if s, ok := stable.Lookup(topic, o.Partition); !ok || s.Offset != o.Offset {
			t.Errorf("%s[%d]: last stable offset %d, high watermark %d after every transaction ended", topic, o.Partition, s.Offset, o.Offset)
		}
	})
	full := c.readLog(t, topic, kgo.ReadUncommitted(), hwm)
	rc := c.readLog(t, topic, kgo.ReadCommitted(), hwm)
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make([]int, c.cfg.Keys)
	total := 0
	for p := int32(0); p < c.cfg.Partitions; p++ {
		want := committedView(t, full[p])
		var got []logRecord
		for _, r := range rc[p] {
			if !r.control {
				got = append(got, r)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s[%d]: read_committed returned %d records, the log commits %d", topic, p, len(got), len(want))
		}
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i].offset != want[i].offset {
				t.Errorf("%s[%d]: read_committed record %d is offset %d, the log commits offset %d", topic, p, i, got[i].offset, want[i].offset)
				break
			}
		}
		errs := 0
		for _, r := range want {
			total++
			var k, seq int
			if _, err := fmt.Sscanf(r.value, "k%04d:%06d", &k, &seq); err != nil || k >= c.cfg.Keys || r.key != string(key(k)) {
				t.Errorf("%s[%d]@%d: bad record %q/%q", topic, p, r.offset, r.key, r.value)
				continue
			}
			if seq != next[k] && errs < 10 {
				errs++
				t.Errorf("%s[%d]@%d: key %d has sequence %d, want %d (transaction %s)", topic, p, r.offset, k, seq, next[k], r.tag)
			}
			next[k] = seq + 1
			if o, ok := c.outcome[r.tag]; (!ok || o == -1) && errs < 10 {
				errs++
				t.Errorf("%s[%d]@%d: committed record %s of transaction %s, which End reported aborted (known %v)", topic, p, r.offset, r.value, r.tag, ok)
			}
		}
		// Every record of a transaction End reported committed is visible.
		vis := map[int64]bool{}
		for _, r := range want {
			vis[r.offset] = true
		}
		for _, r := range full[p] {
			if !r.control && c.outcome[r.tag] == 1 && !vis[r.offset] && errs < 10 {
				errs++
				t.Errorf("%s[%d]@%d: %s of transaction %s, which End reported committed, is not visible", topic, p, r.offset, r.value, r.tag)
			}
		}
	}
	if total != c.cfg.Keys*c.cfg.PerKey {
		t.Errorf("%s: %d committed records, want %d", topic, total, c.cfg.Keys*c.cfg.PerKey)
	}
	for k, n := range next {
		if n != c.cfg.PerKey {
			t.Errorf("%s: key %d ends at sequence %d, want %d", topic, k, n, c.cfg.PerKey)
			break
		}
	}
}
