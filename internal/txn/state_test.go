package txn

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestPlanInit(t *testing.T) {
	maxT := time.Minute
	cases := []struct {
		name    string
		m       *Metadata
		timeout time.Duration
		pid     int64
		epoch   int16
		want    initDecision
		wantErr error
	}{
		{"new id", nil, time.Second, -1, -1, initDecision{newPID: true}, nil},
		{"timeout too large", nil, 2 * time.Minute, -1, -1, initDecision{}, ErrInvalidTransactionTimeout},
		{"zero timeout", nil, 0, -1, -1, initDecision{}, ErrInvalidTransactionTimeout},
		{"empty bumps", &Metadata{ProducerID: 7, ProducerEpoch: 3, State: Empty}, time.Second, -1, -1, initDecision{}, nil},
		{"complete bumps", &Metadata{ProducerID: 7, ProducerEpoch: 3, State: CompleteCommit}, time.Second, -1, -1, initDecision{}, nil},
		{"ongoing aborts first", &Metadata{ProducerID: 7, ProducerEpoch: 3, State: Ongoing}, time.Second, -1, -1, initDecision{abortFirst: true}, nil},
		{"preparing", &Metadata{ProducerID: 7, ProducerEpoch: 3, State: PrepareCommit}, time.Second, -1, -1, initDecision{}, ErrConcurrentTransactions},
		{"epoch exhausted", &Metadata{ProducerID: 7, ProducerEpoch: math.MaxInt16 - 1, State: Empty}, time.Second, -1, -1, initDecision{newPID: true}, nil},
		{"resume matches", &Metadata{ProducerID: 7, ProducerEpoch: 3, State: Empty}, time.Second, 7, 3, initDecision{}, nil},
		{"resume stale epoch", &Metadata{ProducerID: 7, ProducerEpoch: 3, State: Empty}, time.Second, 7, 2, initDecision{}, ErrProducerFenced},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := planInit(c.m, c.timeout, maxT, c.pid, c.epoch)
			if !errors.Is(err, c.wantErr) || got != c.want {
				t.Fatalf("planInit = %+v, %v; want %+v, %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	m := bumped(Metadata{ID: "t"}, 5, time.Second, now)
	if m.ProducerID != 5 || m.ProducerEpoch != 0 || m.State != Empty {
		t.Fatalf("new: %+v", m)
	}
	tp := TopicPartition{"a", 0}
	if _, _, err := planAddPartitions(&m, 6, 0, []TopicPartition{tp}, nil, false, now); !errors.Is(err, ErrInvalidProducerIDMapping) {
		t.Fatalf("wrong pid: %v", err)
	}
	if _, _, err := planAddPartitions(&m, 5, 1, []TopicPartition{tp}, nil, false, now); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("wrong epoch: %v", err)
	}
	if _, err := planEnd(&m, 5, 0, true, false); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("end without transaction: %v", err)
	}
	n, changed, err := planAddPartitions(&m, 5, 0, []TopicPartition{tp}, nil, false, now)
	if err != nil || !changed || n.State != Ongoing || len(n.Partitions) != 1 || !n.TxnStart.Equal(now) {
		t.Fatalf("add: %+v %v %v", n, changed, err)
	}
	if _, changed, _ := planAddPartitions(&n, 5, 0, []TopicPartition{tp}, nil, false, now); changed {
		t.Fatal("adding a known partition changed the state")
	}
	if act, err := planEnd(&n, 5, 0, true, false); err != nil || act != endComplete {
		t.Fatalf("end: %v %v", act, err)
	}
	p := prepared(n, true, now)
	if p.State != PrepareCommit {
		t.Fatalf("prepared: %v", p.State)
	}
	for _, c := range []struct {
		commit bool
		want   error
	}{{true, ErrConcurrentTransactions}, {false, ErrInvalidTxnState}} {
		if _, err := planEnd(&p, 5, 0, c.commit, false); !errors.Is(err, c.want) {
			t.Fatalf("end while PrepareCommit (commit=%v): %v, want %v", c.commit, err, c.want)
		}
	}
	if _, _, err := planAddPartitions(&p, 5, 0, []TopicPartition{tp}, nil, false, now); !errors.Is(err, ErrConcurrentTransactions) {
		t.Fatalf("add while preparing: %v", err)
	}
	done := completed(p, now)
	if done.State != CompleteCommit {
		t.Fatalf("completed: %v", done.State)
	}
	if act, err := planEnd(&done, 5, 0, true, false); err != nil || act != endNothing {
		t.Fatalf("retried commit: %v %v", act, err)
	}
	if _, err := planEnd(&done, 5, 0, false, false); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("abort after commit: %v", err)
	}
	// A new transaction starts from no partitions.
	n2, _, err := planAddPartitions(&done, 5, 0, []TopicPartition{{"b", 1}}, nil, false, now.Add(time.Second))
	if err != nil || len(n2.Partitions) != 1 || n2.State != Ongoing {
		t.Fatalf("second transaction: %+v %v", n2, err)
	}
	if timedOut(&n2, now.Add(1500*time.Millisecond)) || !timedOut(&n2, now.Add(3*time.Second)) {
		t.Fatal("timedOut")
	}
	f := fenced(n2, now)
	if f.State != PrepareAbort || f.ProducerEpoch != 1 {
		t.Fatalf("fenced: %+v", f)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	m := Metadata{ID: "tx", ProducerID: 42, ProducerEpoch: 3, Timeout: 5 * time.Second, State: Ongoing,
		Partitions: map[TopicPartition]struct{}{{"a", 1}: {}, {"a", 0}: {}, {"b", 2}: {}},
		TxnStart:   time.UnixMilli(1000), LastUpdate: time.UnixMilli(2000)}
	id, got, err := decodeRecord(encodeKey("tx"), encodeValue(m))
	if err != nil || id != "tx" || got == nil {
		t.Fatalf("decode: %q %v %v", id, got, err)
	}
	if got.ProducerID != 42 || got.ProducerEpoch != 3 || got.Timeout != m.Timeout || got.State != Ongoing ||
		len(got.Partitions) != 3 || !got.TxnStart.Equal(m.TxnStart) || !got.LastUpdate.Equal(m.LastUpdate) {
		t.Fatalf("round trip: %+v", got)
	}
	if _, tomb, err := decodeRecord(encodeKey("tx"), nil); err != nil || tomb != nil {
		t.Fatalf("tombstone: %v %v", tomb, err)
	}
	if _, _, err := decodeRecord([]byte{0}, []byte{1}); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("corrupt: %v", err)
	}
}

func TestStateNames(t *testing.T) {
	for s := Empty; s <= PrepareEpochFence; s++ {
		if got, ok := ParseState(s.String()); !ok || got != s {
			t.Fatalf("ParseState(%s) = %v %v", s, got, ok)
		}
	}
}

// TestPlanEndV2 follows a transaction.version 2 producer: every end bumps
// the epoch, a retry carries the epoch before the bump, an empty abort is
// legal, and an exhausted epoch moves to the next producer id.
func TestPlanEndV2(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	tp := TopicPartition{"a", 0}
	m := bumped(Metadata{ID: "x"}, 5, time.Minute, now) // pid 5 epoch 0, Empty
	if act, err := planEnd(&m, 5, 0, true, true); act != endNothing || !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("commit with nothing open: %v %v", act, err)
	}
	if act, err := planEnd(&m, 5, 0, false, true); err != nil || act != endEmptyAbort {
		t.Fatalf("abort with nothing open: %v %v", act, err)
	}
	on, _, err := planAddPartitions(&m, 5, 0, []TopicPartition{tp}, nil, true, now)
	if err != nil || !on.TV2 || on.State != Ongoing {
		t.Fatalf("implicit add: %+v %v", on, err)
	}
	if act, err := planEnd(&on, 5, 0, true, true); err != nil || act != endComplete {
		t.Fatalf("commit: %v %v", act, err)
	}
	done := completed(preparedV2(on, true, -1, now), now)
	if done.State != CompleteCommit || done.ProducerID != 5 || done.ProducerEpoch != 1 {
		t.Fatalf("completed: %+v", done)
	}
	for _, c := range []struct {
		name   string
		epoch  int16
		commit bool
		act    endAction
		err    error
	}{
		{"retry of the commit (old epoch)", 0, true, endNothing, nil},
		{"abort retry of a commit", 0, false, endNothing, ErrInvalidTxnState},
		{"next transaction, empty abort", 1, false, endEmptyAbort, nil},
		{"next transaction, empty commit", 1, true, endNothing, ErrInvalidTxnState},
		{"stale epoch", -1, true, endNothing, ErrProducerFenced},
		{"future epoch", 2, true, endNothing, ErrProducerFenced},
	} {
		if act, err := planEnd(&done, 5, c.epoch, c.commit, true); act != c.act || !errors.Is(err, c.err) {
			t.Errorf("%s: got %v %v, want %v %v", c.name, act, err, c.act, c.err)
		}
	}

	// Exhausted epoch: the end moves the producer to the next id.
	ex := on.clone()
	ex.ProducerEpoch = math.MaxInt16 - 1
	if !epochExhausted(&ex) {
		t.Fatal("epoch not exhausted")
	}
	p := preparedV2(ex, false, 9, now)
	if p.ProducerID != 5 || p.ProducerEpoch != math.MaxInt16 || p.NextProducerID != 9 {
		t.Fatalf("prepared: %+v", p)
	}
	d := completed(p, now)
	if d.ProducerID != 9 || d.ProducerEpoch != 0 || d.PreviousProducerID != 5 || d.NextProducerID != -1 {
		t.Fatalf("completed with a new id: %+v", d)
	}
	if act, err := planEnd(&d, 5, math.MaxInt16-1, false, true); err != nil || act != endNothing {
		t.Fatalf("retry across the new id: %v %v", act, err)
	}
	if _, err := planEnd(&d, 5, 3, false, true); !errors.Is(err, ErrInvalidProducerIDMapping) {
		t.Fatalf("old id, other epoch: %v", err)
	}
}

func TestExpired(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	m := Metadata{State: CompleteCommit, LastUpdate: now}
	if expired(&m, now.Add(time.Hour-time.Millisecond), time.Hour) || !expired(&m, now.Add(time.Hour), time.Hour) {
		t.Fatal("expired: boundary")
	}
	for _, s := range []State{Ongoing, PrepareCommit, PrepareAbort} {
		m.State = s
		if expired(&m, now.Add(48*time.Hour), time.Hour) {
			t.Fatalf("%v expired", s)
		}
	}
}

func TestCodecV2RoundTrip(t *testing.T) {
	m := Metadata{ID: "tx", ProducerID: 42, ProducerEpoch: 7, Timeout: time.Second, State: PrepareAbort,
		LastUpdate: time.UnixMilli(2000), TV2: true, PreviousProducerID: 40, NextProducerID: 43}
	_, got, err := decodeRecord(encodeKey("tx"), encodeValue(m))
	if err != nil || !got.TV2 || got.PreviousProducerID != 40 || got.NextProducerID != 43 || got.ProducerEpoch != 7 {
		t.Fatalf("v1 round trip: %+v %v", got, err)
	}
	m.TV2 = false
	if _, got, err = decodeRecord(encodeKey("tx"), encodeValue(m)); err != nil || got.TV2 || got.NextProducerID != -1 {
		t.Fatalf("v0 round trip: %+v %v", got, err)
	}
}
