package node

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestLeaseDuration(t *testing.T) {
	for _, tc := range []struct{ session, want time.Duration }{
		{9 * time.Second, 8100 * time.Millisecond},       // Kafka's default: a tenth
		{30 * time.Second, 27 * time.Second},             // a tenth
		{3 * time.Second, 2500 * time.Millisecond},       // at least 500 ms
		{1500 * time.Millisecond, time.Second},           // at least 500 ms
		{600 * time.Millisecond, 300 * time.Millisecond}, // never below half the session
	} {
		if got := leaseDuration(tc.session); got != tc.want {
			t.Errorf("leaseDuration(%v) = %v, want %v", tc.session, got, tc.want)
		}
	}
}

// TestBrokerLease: the lease counts from the send of the heartbeat, not its
// answer; it is not held before a first renewal; a lone voter holds it
// always; a late answer to an older heartbeat does not shorten it.
func TestBrokerLease(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := time.Unix(1000, 0)
	now := base
	lone := false
	l := newBrokerLease(10*time.Second, func() bool { return lone }, logger) // a 9 s lease
	l.now = func() time.Time { return now }
	if l.held() {
		t.Fatal("held before any heartbeat was answered")
	}
	l.renew(base)
	now = base.Add(8999 * time.Millisecond)
	if !l.held() {
		t.Fatal("not held within the lease")
	}
	now = base.Add(9 * time.Second)
	if l.held() {
		t.Fatal("held at the end of the lease (session 10 s, margin 1 s)")
	}
	lone = true
	if !l.held() {
		t.Fatal("a lone voter's lease ended")
	}
	lone = false
	l.renew(base.Add(5 * time.Second))
	l.renew(base.Add(time.Second)) // an older heartbeat's answer
	now = base.Add(13999 * time.Millisecond)
	if !l.held() {
		t.Fatal("an older heartbeat's answer shortened the lease")
	}
	now = base.Add(14 * time.Second)
	if l.held() {
		t.Fatal("held past the renewed lease")
	}
	var nilLease *brokerLease
	if !nilLease.held() {
		t.Fatal("a node without a lease (controller only) refused")
	}
}
