package node_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The chain: stage i consumes topic chain-i (read_committed, in a group) and
// produces every record unchanged to chain-(i+1) in one transaction per poll
// with GroupTransactSession, its offsets committed in the same transaction.
// Members join and quit while the others have transactions open. Each
// produced record carries the transaction that wrote it in a header, so the
// log can be checked against what each End reported.
const (
	chainKeys       = 200
	chainPerKey     = 100 // chainKeys*chainPerKey records enter the chain
	chainPartitions = 6
	chainTxnHeader  = "txn"
)

// chainKey and chainValue make the input: per key, sequence numbers 0.. in order.
func chainKey(k int) []byte              { return []byte(fmt.Sprintf("k%03d", k)) }
func chainValue(k, seq int) []byte       { return []byte(fmt.Sprintf("k%03d:%05d", k, seq)) }
func chainTopic(stage int) string        { return fmt.Sprintf("chain-%d", stage) }
func chainGroup(stage int) string        { return fmt.Sprintf("chain-g%d", stage) }
func chainTxnTag(m string, n int) string { return m + "#" + strconv.Itoa(n) }

// txnLedger records what End reported for every transaction that produced.
type txnLedger struct {
	mu      sync.Mutex
	outcome map[string]int8 // tag -> 1 committed, -1 aborted, 0 unknown (End failed)
	errs    []string
}

func (l *txnLedger) set(tag string, o int8) {
	l.mu.Lock()
	l.outcome[tag] = o
	l.mu.Unlock()
}

func (l *txnLedger) fail(format string, args ...any) {
	l.mu.Lock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// chainMemberSpec is one member of a stage's group.
type chainMemberSpec struct {
	name      string
	opts      []kgo.Opt
	quitAfter int // transactions before it leaves; 0: runs until stopped
}

// chainMember runs one consume-transform-produce member.
type chainMember struct {
	stop context.CancelFunc
	done chan struct{}
}

func startChainMember(addr string, stage int, spec chainMemberSpec, led *txnLedger) *chainMember {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.TransactionalID(spec.name),
		kgo.ConsumerGroup(chainGroup(stage)),
		kgo.ConsumeTopics(chainTopic(stage)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionTimeout(30 * time.Second),
		kgo.SessionTimeout(3 * time.Second),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.RetryTimeout(20 * time.Second),
	}, spec.opts...)
	if os.Getenv("GREGOR_TEST_LOG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return spec.name + " " })))
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &chainMember{stop: cancel, done: make(chan struct{})}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		led.fail("%s: %v", spec.name, err)
		close(m.done)
		return m
	}
	go func() {
		defer close(m.done)
		defer sess.Close()
		out := chainTopic(stage + 1)
		for n := 0; ctx.Err() == nil && (spec.quitAfter == 0 || n < spec.quitAfter); {
			fs := sess.PollRecords(ctx, 300)
			if ctx.Err() != nil {
				return // nothing is produced before Begin, so nothing is left open
			}
			fs.EachError(func(tp string, p int32, err error) {
				led.fail("%s: fetch %s[%d]: %v", spec.name, tp, p, err)
			})
			recs := fs.Records()
			if len(recs) == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				led.fail("%s: begin: %v", spec.name, err)
				return
			}
			tag := chainTxnTag(spec.name, n)
			n++
			e := kgo.AbortingFirstErrPromise(sess.Client())
			for _, r := range recs {
				sess.Produce(context.Background(), &kgo.Record{Topic: out, Key: r.Key, Value: r.Value,
					Headers: []kgo.RecordHeader{{Key: chainTxnHeader, Value: []byte(tag)}}}, e.Promise())
			}
			// The transaction's outcome is unknown until End answers.
			led.set(tag, 0)
			committed, err := sess.End(context.Background(), e.Err() == nil)
			switch {
			case err != nil:
				led.fail("%s: end %s: %v", spec.name, tag, err)
				return
			case committed:
				led.set(tag, 1)
			default:
				led.set(tag, -1)
			}
		}
	}()
	return m
}

func (m *chainMember) close() {
	m.stop()
	<-m.done
}

// chainRecord is one record of a topic's log as written, control records included.
type chainRecord struct {
	offset      int64
	key, value  string
	tag         string
	pid         int64
	control     bool
	commit      bool // for a control record: COMMIT (else ABORT)
	transaction bool
}

// readLog reads every offset of topic's partitions below their high
// watermark (read_uncommitted, control records kept).
func readLog(t *testing.T, addr string, topic string, isolation kgo.IsolationLevel, ends map[int32]int64) map[int32][]chainRecord {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	left := 0
	for p, end := range ends {
		if end > 0 {
			offs[p] = kgo.NewOffset().AtStart()
			left++
		}
	}
	out := map[int32][]chainRecord{}
	if left == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.KeepControlRecords(), kgo.FetchIsolationLevel(isolation),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 30*time.Second)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d partitions not read to their end", topic, left)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("read %s[%d]: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c := chainRecord{offset: r.Offset, key: string(r.Key), value: string(r.Value), pid: r.ProducerID,
				control: r.Attrs.IsControl(), transaction: r.Attrs.IsTransactional()}
			if c.control {
				// Control record key: version int16, type int16 (0 abort, 1 commit).
				if len(r.Key) < 4 {
					t.Fatalf("%s[%d]@%d: control key %x", topic, r.Partition, r.Offset, r.Key)
				}
				c.commit = binary.BigEndian.Uint16(r.Key[2:]) == 1
			}
			for _, h := range r.Headers {
				if h.Key == chainTxnHeader {
					c.tag = string(h.Value)
				}
			}
			out[r.Partition] = append(out[r.Partition], c)
			if r.Offset == ends[r.Partition]-1 {
				left--
			}
		})
	}
	return out
}

// committedView is what a read_committed reader must see, computed from the
// full log: transactional records of a producer are visible when its next
// control record is a COMMIT.
func committedView(t *testing.T, log []chainRecord) []chainRecord {
	t.Helper()
	var out []chainRecord
	pending := map[int64][]chainRecord{}
	var order []chainRecord // in offset order, resolved below
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
	for _, r := range order {
		if visible[r.offset] {
			out = append(out, r)
		}
	}
	return out
}

// checkChainTopic checks one topic of the chain after every member stopped:
// its committed content is exactly the input (every key's sequence once, in
// order), a read_committed fetch returns exactly that content, and every
// committed record comes from a transaction End reported committed while
// every record of a transaction End reported aborted is invisible.
func checkChainTopic(t *testing.T, adm *kadm.Client, addr string, stage int, led *txnLedger) {
	t.Helper()
	topic := chainTopic(stage)
	ends, err := adm.ListEndOffsets(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(testCtx(t, 10*time.Second), topic)
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
	full := readLog(t, addr, topic, kgo.ReadUncommitted(), hwm)
	rc := readLog(t, addr, topic, kgo.ReadCommitted(), hwm)
	next := make([]int, chainKeys)
	total := 0
	for p := int32(0); p < chainPartitions; p++ {
		want := committedView(t, full[p])
		var got []chainRecord
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
				t.Errorf("%s[%d]: read_committed record %d at offset %d, the log commits offset %d (%s)",
					topic, p, i, got[i].offset, want[i].offset, want[i].value)
				break
			}
		}
		for _, r := range want {
			total++
			var k, seq int
			if _, err := fmt.Sscanf(r.value, "k%03d:%05d", &k, &seq); err != nil || k >= chainKeys || r.key != string(chainKey(k)) {
				t.Errorf("%s[%d]@%d: bad record %q/%q", topic, p, r.offset, r.key, r.value)
				continue
			}
			if seq != next[k] {
				t.Errorf("%s[%d]@%d: key %d has sequence %d, want %d (tag %s)", topic, p, r.offset, k, seq, next[k], r.tag)
			}
			next[k] = seq + 1
			if stage > 0 {
				led.mu.Lock()
				o, ok := led.outcome[r.tag]
				led.mu.Unlock()
				if !ok || o == -1 {
					t.Errorf("%s[%d]@%d: committed record %s written by transaction %s, which End reported aborted (known %v)", topic, p, r.offset, r.value, r.tag, ok)
				}
			}
		}
		if stage > 0 {
			// Every record of a transaction End reported aborted is invisible.
			vis := map[int64]bool{}
			for _, r := range want {
				vis[r.offset] = true
			}
			for _, r := range full[p] {
				if r.control {
					continue
				}
				led.mu.Lock()
				o := led.outcome[r.tag]
				led.mu.Unlock()
				if o == 1 != vis[r.offset] {
					t.Errorf("%s[%d]@%d: %s of transaction %s (End: %d) visible=%v", topic, p, r.offset, r.value, r.tag, o, vis[r.offset])
				}
			}
		}
	}
	if total != chainKeys*chainPerKey {
		t.Errorf("%s: %d committed records, want %d", topic, total, chainKeys*chainPerKey)
	}
	for k, n := range next {
		if n != chainPerKey {
			t.Errorf("%s: key %d ends at sequence %d, want %d", topic, k, n, chainPerKey)
			break
		}
	}
}

// TestE2EChainExactlyOnce: three chained consume-transform-produce stages
// (KIP-98/KIP-447 with GroupTransactSession, read_committed), 20,000 keyed
// records, groups of eager (range), cooperative-sticky and static members,
// members leaving after a few transactions and new ones joining while the
// others have transactions open. Every stage's committed output is the input
// exactly, per key in order, and no aborted record is ever visible.
func TestE2EChainExactlyOnce(t *testing.T) {
	runChain(t, 3)
}

func runChain(t *testing.T, stages int) {
	n := startNode(t, t.TempDir(), map[string]string{
		"group.initial.rebalance.delay.ms": "0",
		"group.min.session.timeout.ms":     "500",
	})
	addr := n.KafkaAddr().String()
	adm, _ := newAdmin(t, n)
	for s := 0; s <= stages; s++ {
		createTopic(t, adm, chainTopic(s), chainPartitions, nil)
	}

	// Input: keyed records, per key in sequence order (the key picks the partition).
	prod := newClient(t, n, kgo.DefaultProduceTopic(chainTopic(0)))
	var recs []*kgo.Record
	for seq := 0; seq < chainPerKey; seq++ {
		for k := 0; k < chainKeys; k++ {
			recs = append(recs, &kgo.Record{Key: chainKey(k), Value: chainValue(k, seq)})
		}
	}
	if err := prod.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce input: %v", err)
	}

	led := &txnLedger{outcome: map[string]int8{}}
	balancers := []struct {
		name string
		opts []kgo.Opt
	}{
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"coop", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
	}
	var mu sync.Mutex
	var running []*chainMember
	for s := 0; s < stages; s++ {
		b := balancers[s%len(balancers)]
		specs := []chainMemberSpec{
			// Quits after a few transactions: its partitions move while the others' transactions are open.
			{name: fmt.Sprintf("s%d-%s-a", s, b.name), opts: b.opts, quitAfter: 3},
			// Static: closing it does not leave; its replacement takes its place.
			{name: fmt.Sprintf("s%d-%s-static", s, b.name), opts: append([]kgo.Opt{kgo.InstanceID(fmt.Sprintf("s%d-static", s))}, b.opts...), quitAfter: 5},
			{name: fmt.Sprintf("s%d-%s-b", s, b.name), opts: b.opts},
		}
		if s == 2 {
			// A mixed group: eager members with members preferring cooperative-sticky
			// (the group uses range while an eager-only member is in it).
			specs[2].opts = []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer(), kgo.RangeBalancer())}
		}
		var static *chainMember
		for i, sp := range specs {
			m := startChainMember(addr, s, sp, led)
			running = append(running, m)
			if i == 1 {
				static = m
			}
		}
		stage, spec := s, specs
		// Replacements: a new dynamic member joins while the first ones work,
		// and the static member's successor (same instance id, new
		// transactional id) starts once it is gone, before its session
		// expires, so it takes its place without a rebalance.
		go func() {
			time.Sleep(time.Duration(300+200*stage) * time.Millisecond)
			mu.Lock()
			running = append(running, startChainMember(addr, stage, chainMemberSpec{name: fmt.Sprintf("s%d-late", stage), opts: spec[0].opts}, led))
			mu.Unlock()
		}()
		go func() {
			<-static.done
			mu.Lock()
			running = append(running, startChainMember(addr, stage, chainMemberSpec{name: fmt.Sprintf("s%d-static-2", stage), opts: spec[1].opts}, led))
			mu.Unlock()
		}()
	}

	// Wait until the last topic committed every record (read_committed, no group).
	last := chainTopic(stages)
	watch := newClient(t, n, kgo.ConsumeTopics(last), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	ctx := testCtx(t, 90*time.Second)
	seen := map[string]bool{}
	for len(seen) < chainKeys*chainPerKey {
		fs := watch.PollFetches(ctx)
		if ctx.Err() != nil {
			led.mu.Lock()
			t.Fatalf("%s: %d of %d records committed before the deadline; member errors: %v", last, len(seen), chainKeys*chainPerKey, led.errs)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	watch.Close()
	time.Sleep(2 * time.Second) // let late members start before stopping everything
	mu.Lock()
	all := append([]*chainMember(nil), running...)
	mu.Unlock()
	for _, m := range all {
		m.close()
	}
	led.mu.Lock()
	for _, e := range led.errs {
		t.Errorf("member: %s", e)
	}
	var committed, aborted int
	for _, o := range led.outcome {
		switch o {
		case 1:
			committed++
		case -1:
			aborted++
		}
	}
	t.Logf("%d transactions committed, %d aborted", committed, aborted)
	led.mu.Unlock()
	for s := 1; s <= stages; s++ {
		checkChainTopic(t, adm, addr, s, led)
	}
}

// TestE2EOffsetFetchRequireStable (KIP-447): while a transaction holds
// offsets of a partition, an OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT for it (the other partitions and a fetch without
// require_stable answer the committed offsets); once the transaction
// commits, its offsets are the committed ones. Without it a member taking a
// partition over in a rebalance resumed before the previous owner's
// transaction and duplicated its output.
func TestE2EOffsetFetchRequireStable(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	adm, raw := newAdmin(t, n)
	createTopic(t, adm, "stable", 2, nil)
	const group = "g-stable"
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "stable", Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "stable", Partition: 1, At: 7, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	cl := txnProducer(t, n, "stable-txn")
	runTxn(t, cl, "stable", true, "warm-up") // the producer id is initialized
	pid, epoch, err := cl.ProducerID(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	// A produced record makes the client end the transaction with EndTxn.
	if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Topic: "stable", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "stable-txn", pid, epoch, group
	if r := rawRequest[*kmsg.AddOffsetsToTxnResponse](t, raw, add); r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = "stable-txn", group, pid, epoch
	commit.Generation = -1
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = "stable"
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset, cp.LeaderEpoch = 0, 9, -1
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	if r := rawRequest[*kmsg.TxnOffsetCommitResponse](t, raw, commit); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}

	// fetch answers partitions 0 and 1 (offset, error code); the client
	// sends the highest version both sides support (v8+: groups).
	fetch := func(requireStable bool) [2][2]int64 {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		rg := kmsg.NewOffsetFetchRequestGroup()
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic, gt.Partitions = "stable", []int32{0, 1}
		rg.Group, rg.Topics = group, append(rg.Topics, gt)
		req.Groups, req.RequireStable = append(req.Groups, rg), requireStable
		r := rawRequest[*kmsg.OffsetFetchResponse](t, raw, req)
		var out [2][2]int64
		if len(r.Groups) != 1 || len(r.Groups[0].Topics) != 1 || r.Groups[0].ErrorCode != 0 {
			t.Fatalf("OffsetFetch v%d: %+v", req.Version, r)
		}
		for _, p := range r.Groups[0].Topics[0].Partitions {
			out[p.Partition] = [2]int64{p.Offset, int64(p.ErrorCode)}
		}
		return out
	}
	unstable := int64(kerr.UnstableOffsetCommit.Code)
	if got, want := fetch(true), [2][2]int64{{-1, unstable}, {7, 0}}; got != want {
		t.Errorf("require_stable during the transaction: %v, want %v", got, want)
	}
	if got, want := fetch(false), [2][2]int64{{5, 0}, {7, 0}}; got != want {
		t.Errorf("during the transaction: %v, want %v", got, want)
	}
	if err := cl.EndTransaction(testCtx(t, 10*time.Second), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got, want := fetch(true), [2][2]int64{{9, 0}, {7, 0}}; got != want {
		t.Errorf("require_stable after the commit: %v, want %v", got, want)
	}
}
