package replica

import (
	"errors"
	"testing"
)

// TestReplicaTxnVerificationGuard checks KIP-890's guard: a transactional
// batch opening its transaction needs the current guard, a marker written
// between the verification and the append voids it (the late produce
// cannot open a hanging transaction), and an open transaction needs none.
func TestReplicaTxnVerificationGuard(t *testing.T) {
	p := openTestPartition(t, t.TempDir())
	defer p.close()
	const pid, epoch = 11, 0

	b, h := txnBatch(t, pid, epoch, 0, 2)
	if _, err := p.AppendVerified(b, h, 1, NoVerification); !errors.Is(err, ErrTxnNotVerified) {
		t.Fatalf("unverified append: %v", err)
	}
	g := p.StartTxnVerification(pid, epoch)
	if g == NoVerification {
		t.Fatal("no verification asked for a producer with no open transaction")
	}
	if _, err := p.AppendVerified(b, h, 1, g+1); !errors.Is(err, ErrTxnNotVerified) {
		t.Fatalf("append with another guard: %v", err)
	}
	if _, err := p.AppendVerified(b, h, 1, g); err != nil {
		t.Fatalf("verified append: %v", err)
	}
	if p.LastStableOffset() != 0 {
		t.Fatalf("LSO %d, want 0 (transaction open)", p.LastStableOffset())
	}
	// The transaction is open here: no round trip for its next batches.
	if g := p.StartTxnVerification(pid, epoch); g != NoVerification {
		t.Fatalf("guard %d for an open transaction", g)
	}
	b2, h2 := txnBatch(t, pid, epoch, 2, 1)
	if _, err := p.AppendVerified(b2, h2, 1, NoVerification); err != nil {
		t.Fatalf("append to the open transaction: %v", err)
	}

	// Verified, then the transaction ends before the append arrives.
	mustMarker(t, p, pid, epoch, true)
	g = p.StartTxnVerification(pid, epoch)
	mustMarker(t, p, pid, epoch, false)
	b3, h3 := txnBatch(t, pid, epoch, 3, 1)
	if _, err := p.AppendVerified(b3, h3, 1, g); !errors.Is(err, ErrTxnNotVerified) {
		t.Fatalf("append verified before a marker: %v", err)
	}
	// A refused verification leaves no guard behind.
	g = p.StartTxnVerification(pid, epoch)
	p.CancelTxnVerification(pid, g)
	if _, err := p.AppendVerified(b3, h3, 1, g); !errors.Is(err, ErrTxnNotVerified) {
		t.Fatalf("append with a cancelled guard: %v", err)
	}
	p.mu.Lock()
	left := len(p.mu.guards)
	p.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d guards left", left)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("LSO %d behind HW %d: hanging transaction", lso, hw)
	}
}
