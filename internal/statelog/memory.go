package statelog

import (
	"bytes"
	"context"
	"sync"
)

// Memory is a Log over records in memory, for tests of coordinator logic:
// appends are committed at once unless Hold is on, and a test moves
// leadership with Depose and Reopen.
type Memory struct {
	d     *memData
	epoch int32
}

// memData is the partition behind one or more Memory logs (one per epoch).
type memData struct {
	mu        sync.Mutex
	recs      []Record
	next      int64
	committed int64
	epoch     int32 // the epoch the current leadership began in; -1: no leader here
	hold      bool
	fail      error
	wake      chan struct{} // closed and replaced on every change
}

// NewMemory makes an empty partition led here at epoch.
func NewMemory(epoch int32) *Memory {
	return &Memory{d: &memData{epoch: epoch, wake: make(chan struct{})}, epoch: epoch}
}

// Reopen makes the partition led here again at epoch (a later one), after
// a break in leadership: the Log returned sees every record; m and other
// older Logs are deposed.
func (m *Memory) Reopen(epoch int32) *Memory {
	d := m.d
	d.mu.Lock()
	d.epoch = epoch
	d.changedLocked()
	d.mu.Unlock()
	return &Memory{d: d, epoch: epoch}
}

// Bump is a leader epoch bump while this node keeps leading (a
// reassignment dropping a follower): the Log returned is the one leadership
// would offer now, and m keeps working, its writes in flight included.
func (m *Memory) Bump() *Memory {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	m.d.changedLocked()
	return &Memory{d: m.d, epoch: m.d.epoch}
}

// Depose moves leadership away: every Log of the partition fails with
// ErrNotLeader, and writes that were not committed never will be.
func (m *Memory) Depose() {
	m.d.mu.Lock()
	m.d.epoch = -1
	m.d.changedLocked()
	m.d.mu.Unlock()
}

// Hold stops (true) or resumes (false) committing appends; resuming commits
// everything appended.
func (m *Memory) Hold(on bool) {
	m.d.mu.Lock()
	m.d.hold = on
	if !on {
		m.d.committed = m.d.next
	}
	m.d.changedLocked()
	m.d.mu.Unlock()
}

// Fail makes appends fail with err (nil: succeed again).
func (m *Memory) Fail(err error) {
	m.d.mu.Lock()
	m.d.fail = err
	m.d.mu.Unlock()
}

// AppendMarker appends producer pid's end-transaction marker, as the
// transaction coordinator does on a partition of the transaction.
func (m *Memory) AppendMarker(pid int64, epoch int16, commit bool) int64 {
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs = append(d.recs, Record{Offset: d.next, ProducerID: pid, ProducerEpoch: epoch, Marker: true, Commit: commit})
	d.next++
	if !d.hold {
		d.committed = d.next
	}
	d.changedLocked()
	return d.next
}

// Len is the number of records (markers included) in the partition.
func (m *Memory) Len() int {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	return len(m.d.recs)
}

func (d *memData) changedLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

// Epoch implements Log.
func (m *Memory) Epoch() int32 { return m.epoch }

// Append implements Log.
func (m *Memory) Append(b Batch) (int64, error) {
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.epoch != m.epoch {
		return 0, ErrNotLeader
	}
	if d.fail != nil {
		return 0, d.fail
	}
	for _, kv := range b.Records {
		r := Record{Offset: d.next, ProducerID: -1, ProducerEpoch: -1, Key: bytes.Clone(kv.Key)}
		if kv.Value != nil {
			r.Value = bytes.Clone(kv.Value)
		}
		if b.ProducerID >= 0 {
			r.ProducerID, r.ProducerEpoch, r.Transactional = b.ProducerID, b.ProducerEpoch, true
		}
		d.recs = append(d.recs, r)
		d.next++
	}
	if !d.hold {
		d.committed = d.next
	}
	d.changedLocked()
	return d.next, nil
}

// WaitReadable implements Log: Memory has no in-sync replicas to count.
func (m *Memory) WaitReadable(ctx context.Context, next int64) error {
	return m.WaitCommitted(ctx, next)
}

// WaitCommitted implements Log.
func (m *Memory) WaitCommitted(ctx context.Context, next int64) error {
	d := m.d
	for {
		d.mu.Lock()
		switch {
		case d.epoch != m.epoch:
			d.mu.Unlock()
			return ErrNotLeader
		case d.committed >= next:
			d.mu.Unlock()
			return nil
		}
		wake := d.wake
		d.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Scan implements Log.
func (m *Memory) Scan(fn func(Record) error) (int64, error) {
	d := m.d
	d.mu.Lock()
	recs, end := d.recs, d.next
	d.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return r.Offset, err
		}
	}
	return end, nil
}
