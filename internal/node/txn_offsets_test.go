package node_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// Transactional offset commits (TxnOffsetCommit) are written to
// __consumer_offsets as the producer's transactional records and take
// effect at the transaction's marker there, as in Kafka. These tests drive
// them with real clients and raw requests over TCP.

// small keeps the internal topics to one partition each, so that the
// restarts of these tests load fast, and makes a group's first rebalance
// finish at once.
var small = map[string]string{"group.initial.rebalance.delay.ms": "0",
	"offsets.topic.num.partitions": "1", "transaction.state.log.num.partitions": "1"}

// openTxn begins a transaction on the transactional client cl and produces
// one record to topic partition 0, and returns the producer id and epoch.
func openTxn(t *testing.T, cl *kgo.Client, topic string) (int64, int16) {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatalf("producer id: %v", err)
	}
	return pid, epoch
}

func addOffsetsToTxn(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, group string) {
	t.Helper()
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, pid, epoch, group
	if resp := rawRequest[*kmsg.AddOffsetsToTxnResponse](t, cl, req); resp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn %s: %v", group, kerr.ErrorForCode(resp.ErrorCode))
	}
}

// claim is who a TxnOffsetCommit claims to be (v3+).
type claim struct {
	id       string
	instance *string
	gen      int32
}

var noMember = claim{gen: -1}

// txnOffsetCommit commits offset for topic partition 0 in the transaction
// and returns the partition's error code.
func txnOffsetCommit(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, group string, m claim, topic string, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, group, pid, epoch
	req.Generation, req.MemberID, req.InstanceID = m.gen, m.id, m.instance
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.TxnOffsetCommitResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("TxnOffsetCommit: malformed response %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func endTxn(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, commit bool) {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	if resp := rawRequest[*kmsg.EndTxnResponse](t, cl, req); resp.ErrorCode != 0 {
		t.Fatalf("EndTxn(commit=%v): %v", commit, kerr.ErrorForCode(resp.ErrorCode))
	}
}

// fetchedOffset is one partition of an OffsetFetch answer.
type fetchedOffset struct {
	offset int64
	code   int16
}

// offsetFetch asks for group's offsets of topic's partitions (nil: every
// committed one) with OffsetFetch v8+; the group-level error must be NONE.
func offsetFetch(t *testing.T, cl *kgo.Client, group, topic string, parts []int32, requireStable bool) map[int32]fetchedOffset {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = requireStable
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	if parts != nil {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = topic, parts
		rg.Topics = append(rg.Topics, rt)
	}
	req.Groups = append(req.Groups, rg)
	resp := rawRequest[*kmsg.OffsetFetchResponse](t, cl, req)
	if resp.Version < 8 || len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
		t.Fatalf("OffsetFetch v%d: malformed or failed response %+v", resp.Version, resp)
	}
	out := map[int32]fetchedOffset{}
	for _, rt := range resp.Groups[0].Topics {
		for _, rp := range rt.Partitions {
			if rt.Topic == topic {
				out[rp.Partition] = fetchedOffset{rp.Offset, rp.ErrorCode}
			}
		}
	}
	return out
}

// committed is the group's stable committed offset of topic partition 0
// (-1: none).
func committed(t *testing.T, cl *kgo.Client, group, topic string) int64 {
	t.Helper()
	// A transaction a restart found prepared is completed in the
	// background after the load: clients retry UNSTABLE_OFFSET_COMMIT.
	var off int64
	testkit.Eventually(t, 20*time.Second, "a stable committed offset", func() error {
		got := offsetFetch(t, cl, group, topic, []int32{0}, true)[0]
		if got.code == kerr.UnstableOffsetCommit.Code {
			return kerr.ErrorForCode(got.code)
		}
		if got.code != 0 {
			t.Fatalf("committed offset of %s: %v", group, kerr.ErrorForCode(got.code))
		}
		off = got.offset
		return nil
	})
	return off
}

func commitPlain(t *testing.T, adm *kadm.Client, group, topic string, at int64) {
	t.Helper()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(testCtx(t, 15*time.Second), group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit %s: %v", group, err)
	}
}

// dropLastBatch cuts the last batch off the one non-empty log of topic's
// partitions in dataDir and removes its clean-shutdown marker, as if the
// node had died before that write reached the disk. It returns the header
// of the batch it dropped.
func dropLastBatch(t *testing.T, dataDir, topic string) record.Header {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dataDir, topic+"-*", "*.log"))
	var seg string
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil && fi.Size() > 0 {
			if seg != "" {
				t.Fatalf("%s: more than one non-empty log (%s, %s)", topic, seg, l)
			}
			seg = l
		}
	}
	if seg == "" {
		t.Fatalf("%s: no data", topic)
	}
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	pos, last := 0, -1
	var h record.Header
	for pos < len(data) {
		if h, err = record.ParseHeader(data[pos:]); err != nil {
			t.Fatalf("%s at %d: %v", seg, pos, err)
		}
		last = pos
		pos += int(h.BatchLength) + record.LengthOverhead
	}
	if err := os.Truncate(seg, int64(last)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(seg), ".clean-shutdown")); err != nil {
		t.Fatal(err)
	}
	return h
}

func txnState(t *testing.T, cl *kgo.Client, id string) string {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp := rawRequest[*kmsg.DescribeTransactionsResponse](t, cl, req)
	if len(resp.TransactionStates) != 1 || resp.TransactionStates[0].ErrorCode != 0 {
		t.Fatalf("DescribeTransactions %s: %+v", id, resp)
	}
	return resp.TransactionStates[0].State
}

// TestE2ETxnOffsetsCrashWindows restarts the node at each step between a
// TxnOffsetCommit and the end of its transaction: the offsets are committed
// exactly when the transaction commits and dropped when it aborts, whatever
// step the node stopped at.
func TestE2ETxnOffsetsCrashWindows(t *testing.T) {
	const (
		id    = "crash-txn"
		group = "crash-group"
	)
	windows := []string{
		// A clean restart with the offsets pending: they are replayed
		// as pending, the transaction ends after the restart.
		"after TxnOffsetCommit",
		// PrepareCommit/PrepareAbort is durable, the marker on
		// __consumer_offsets and the completion are lost: the
		// transaction coordinator finishes the transaction at load.
		"after Prepare, before the offsets marker",
		// The marker is durable, the completion is lost.
		"after the offsets marker, before Complete",
	}
	for _, window := range windows {
		for _, commit := range []bool{true, false} {
			name := window + "/abort"
			if commit {
				name = window + "/commit"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				n := startNode(t, dir, small)
				adm, cl := newAdmin(t, n)
				createTopic(t, adm, "in", 1, nil)
				createTopic(t, adm, "out", 1, nil)
				commitPlain(t, adm, group, "in", 5)

				p := txnProducer(t, n, id)
				pid, epoch := openTxn(t, p, "out")
				addOffsetsToTxn(t, cl, id, pid, epoch, group)
				if code := txnOffsetCommit(t, cl, id, pid, epoch, group, noMember, "in", 42); code != 0 {
					t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
				}
				if got := offsetFetch(t, cl, group, "in", []int32{0}, false)[0]; got.code != 0 || got.offset != 5 {
					t.Fatalf("OffsetFetch while pending: %+v, want the committed 5", got)
				}

				switch window {
				case "after TxnOffsetCommit":
					p.Close()
					if err := n.Close(); err != nil {
						t.Fatal(err)
					}
					n = startNode(t, dir, small)
					_, cl = newAdmin(t, n)
					if got := offsetFetch(t, cl, group, "in", []int32{0}, true)[0]; got.code != kerr.UnstableOffsetCommit.Code {
						t.Fatalf("require_stable after the restart: %+v, want UNSTABLE_OFFSET_COMMIT (pending replayed)", got)
					}
					if got := offsetFetch(t, cl, group, "in", []int32{0}, false)[0]; got.offset != 5 {
						t.Fatalf("OffsetFetch after the restart: %+v, want the committed 5", got)
					}
					endTxn(t, cl, id, pid, epoch, commit)
				default:
					if err := p.EndTransaction(testCtx(t, 20*time.Second), kgo.TransactionEndTry(commit)); err != nil {
						t.Fatalf("end transaction: %v", err)
					}
					p.Close()
					if err := n.Close(); err != nil {
						t.Fatal(err)
					}
					if h := dropLastBatch(t, dir, "__transaction_state"); h.IsControl() {
						t.Fatalf("dropped a control batch from __transaction_state")
					}
					if window == "after Prepare, before the offsets marker" {
						if h := dropLastBatch(t, dir, "__consumer_offsets"); !h.IsControl() || h.ProducerID != pid {
							t.Fatalf("the last batch of __consumer_offsets is not the transaction's marker: %+v", h)
						}
					}
					n = startNode(t, dir, small)
					_, cl = newAdmin(t, n)
				}

				want, state := int64(5), "CompleteAbort"
				if commit {
					want, state = 42, "CompleteCommit"
				}
				if got := committed(t, cl, group, "in"); got != want {
					t.Fatalf("committed offset %d, want %d", got, want)
				}
				if got := txnState(t, cl, id); got != state {
					t.Fatalf("transaction state %s, want %s", got, state)
				}
				// And it stays so across another restart (the log says the same).
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
				n = startNode(t, dir, small)
				_, cl = newAdmin(t, n)
				if got := committed(t, cl, group, "in"); got != want {
					t.Fatalf("committed offset %d after a second restart, want %d", got, want)
				}
			})
		}
	}
}

// joinStatic makes a one-member group with a static member and returns its
// member id and generation (the group is Stable).
func joinStatic(t *testing.T, cl *kgo.Client, group, instance string) (string, int32) {
	t.Helper()
	jreq := kmsg.NewPtrJoinGroupRequest()
	jreq.Group, jreq.SessionTimeoutMillis, jreq.RebalanceTimeoutMillis = group, 30000, 30000
	jreq.ProtocolType, jreq.InstanceID = "consumer", &instance
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name, jp.Metadata = "range", []byte{0, 0}
	jreq.Protocols = append(jreq.Protocols, jp)
	jresp := rawRequest[*kmsg.JoinGroupResponse](t, cl, jreq)
	if jresp.ErrorCode != 0 {
		t.Fatalf("JoinGroup: %v", kerr.ErrorForCode(jresp.ErrorCode))
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.Generation, sreq.MemberID, sreq.InstanceID = group, jresp.Generation, jresp.MemberID, &instance
	sa := kmsg.NewSyncGroupRequestGroupAssignment()
	sa.MemberID, sa.MemberAssignment = jresp.MemberID, []byte{0, 0}
	sreq.GroupAssignment = append(sreq.GroupAssignment, sa)
	if sresp := rawRequest[*kmsg.SyncGroupResponse](t, cl, sreq); sresp.ErrorCode != 0 {
		t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(sresp.ErrorCode))
	}
	return jresp.MemberID, jresp.Generation
}

// TestE2ETxnOffsetCommitFencing checks the KIP-447 answers to a
// TxnOffsetCommit, as Kafka's validateOffsetCommit gives them for a
// transactional commit.
func TestE2ETxnOffsetCommitFencing(t *testing.T) {
	const id = "fence-txn"
	n := startNode(t, t.TempDir(), small)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "in", 1, nil)
	commitPlain(t, adm, "fence-setup", "in", 1) // creates __consumer_offsets
	memberID, gen := joinStatic(t, cl, "fence-g", "inst-1")
	other := "inst-2"
	inst := "inst-1"

	p := txnProducer(t, n, id)
	pid, epoch := openTxn(t, p, "in")
	v2 := kversion.Stable()
	v2.SetMaxKeyVersion(28, 2) // TxnOffsetCommit without member fields
	cl2 := newClient(t, n, kgo.MaxVersions(v2))

	cases := []struct {
		name   string
		group  string
		cl     *kgo.Client
		m      claim
		want   error
		offset int64
	}{
		{"current member", "fence-g", cl, claim{memberID, &inst, gen}, nil, 10},
		{"stale generation", "fence-g", cl, claim{memberID, &inst, gen - 1}, kerr.IllegalGeneration, 11},
		{"unknown member", "fence-g", cl, claim{"nobody", nil, gen}, kerr.UnknownMemberID, 12},
		{"generation without member", "fence-g", cl, claim{"", nil, gen}, kerr.UnknownMemberID, 13},
		{"instance of another member", "fence-g", cl, claim{"nobody", &inst, gen}, kerr.FencedInstanceID, 14},
		{"unknown instance", "fence-g", cl, claim{memberID, &other, gen}, kerr.UnknownMemberID, 15},
		{"no member info, non-empty group (v3)", "fence-g", cl, noMember, nil, 16},
		{"no member info, non-empty group (v2)", "fence-g", cl2, noMember, nil, 17},
		{"generation of a group that does not exist", "fence-none", cl, claim{"m", nil, 3}, kerr.IllegalGeneration, 1},
		{"no generation, new group", "fence-new", cl, noMember, nil, 2},
		{"member of an empty group", "fence-setup", cl, claim{"m", nil, 0}, kerr.UnknownMemberID, 3},
		{"no generation, empty group", "fence-setup", cl, claim{"m", nil, -1}, nil, 4},
	}
	added := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !added[c.group] {
				addOffsetsToTxn(t, cl, id, pid, epoch, c.group)
				added[c.group] = true
			}
			code := txnOffsetCommit(t, c.cl, id, pid, epoch, c.group, c.m, "in", c.offset)
			if got := kerr.ErrorForCode(code); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	if err := p.EndTransaction(testCtx(t, 20*time.Second), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The accepted commits, and only they, took effect: the last accepted
	// one of each group.
	for group, want := range map[string]int64{"fence-g": 17, "fence-new": 2, "fence-setup": 4, "fence-none": -1} {
		if got := committed(t, cl, group, "in"); got != want {
			t.Errorf("group %s: committed %d, want %d", group, got, want)
		}
	}
}

// TestE2ETxnOffsetsRequireStable checks OffsetFetch with require_stable
// (KIP-447) while a transaction holds offsets: UNSTABLE_OFFSET_COMMIT for
// exactly the partitions it holds, in the partition entries of the v7 and
// the v8+ layouts; without require_stable the committed offsets, never the
// pending ones.
func TestE2ETxnOffsetsRequireStable(t *testing.T) {
	const (
		id    = "stable-txn"
		group = "stable-group"
	)
	n := startNode(t, t.TempDir(), small)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "in", 2, nil)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "in", Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "in", Partition: 1, At: 7, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(testCtx(t, 15*time.Second), group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	p := txnProducer(t, n, id)
	pid, epoch := openTxn(t, p, "in")
	addOffsetsToTxn(t, cl, id, pid, epoch, group)
	if code := txnOffsetCommit(t, cl, id, pid, epoch, group, noMember, "in", 9); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}

	v7 := kversion.Stable()
	v7.SetMaxKeyVersion(9, 7)
	cl7 := newClient(t, n, kgo.MaxVersions(v7))
	fetch7 := func(parts []int32, stable bool) map[int32]fetchedOffset {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group, req.RequireStable = group, stable
		if parts != nil {
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic, rt.Partitions = "in", parts
			req.Topics = append(req.Topics, rt)
		}
		resp := rawRequest[*kmsg.OffsetFetchResponse](t, cl7, req)
		if resp.Version != 7 || resp.ErrorCode != 0 || len(resp.Groups) != 0 {
			t.Fatalf("OffsetFetch v%d: top-level error %v, %d groups", resp.Version, kerr.ErrorForCode(resp.ErrorCode), len(resp.Groups))
		}
		out := map[int32]fetchedOffset{}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				out[rp.Partition] = fetchedOffset{rp.Offset, rp.ErrorCode}
			}
		}
		return out
	}
	unstable := fetchedOffset{-1, kerr.UnstableOffsetCommit.Code}
	pending := map[int32]fetchedOffset{0: unstable, 1: {7, 0}}
	plain := map[int32]fetchedOffset{0: {5, 0}, 1: {7, 0}}
	check := func(what string, got, want map[int32]fetchedOffset) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %+v, want %+v", what, got, want)
			return
		}
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s: partition %d %+v, want %+v", what, p, got[p], w)
			}
		}
	}
	check("v8 require_stable", offsetFetch(t, cl, group, "in", []int32{0, 1}, true), pending)
	check("v8 require_stable, all partitions", offsetFetch(t, cl, group, "in", nil, true), pending)
	check("v8", offsetFetch(t, cl, group, "in", []int32{0, 1}, false), plain)
	check("v7 require_stable", fetch7([]int32{0, 1}, true), pending)
	check("v7 require_stable, all partitions", fetch7(nil, true), pending)
	check("v7", fetch7([]int32{0, 1}, false), plain)

	if err := p.EndTransaction(testCtx(t, 20*time.Second), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	done := map[int32]fetchedOffset{0: {9, 0}, 1: {7, 0}}
	check("v8 require_stable after the commit", offsetFetch(t, cl, group, "in", []int32{0, 1}, true), done)
	check("v7 require_stable after the commit", fetch7([]int32{0, 1}, true), done)
}
