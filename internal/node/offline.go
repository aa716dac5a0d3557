package node

import (
	"context"
	"fmt"
)

// A failed write, truncate or fsync anywhere in the data directory (the
// node's vfs.WatchFS reports it) takes the directory offline, as Kafka's
// LogDirFailureChannel does. Gregor has one log directory per node, so the
// whole broker goes offline, in this order:
//
//  1. the replica manager refuses every partition operation
//     (replica.ErrLogDirOffline: KAFKA_STORAGE_ERROR to clients and to
//     followers), stops reconciling partitions and proposing ISR changes;
//  2. the replica fetchers stop (under the reconcile lock, so none restarts);
//  3. the broker asks the active controller to fence it (the heartbeat of a
//     controlled shutdown) and stops heartbeating: the controller drops it
//     from every ISR and elects new leaders at once, or after
//     broker.session.timeout.ms when no controller answers.
//
// Kafka halts a broker whose last log directory failed; Gregor keeps the
// process up, fenced and unready (/readyz), so that the cause is visible,
// until it is restarted. Its Raft voter keeps running while its store works:
// the metadata log is on the same disk, and when its store fails it refuses
// every write, the leader steps down, and hashicorp/raft panics once it must
// persist a new term (the process halts, as Kafka does when its metadata log
// directory fails). Nothing acknowledged is lost: the batch whose write or
// fsync failed is never acknowledged (the failure is sticky in its log), and
// every acknowledged batch is fsynced on the other ISR members.

// storageFailed is the vfs.WatchFS callback; it runs in the failed
// operation's goroutine and must not block.
func (n *Node) storageFailed(name string, err error) {
	n.offlineOnce.Do(func() {
		n.offlineErr = fmt.Errorf("%s: %w", name, err)
		close(n.offlinec)
	})
}

// watchStorage takes the node offline on the first storage failure.
func (n *Node) watchStorage(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-n.offlinec:
	}
	n.replicas.SetOffline(n.offlineErr)
	n.reconcileMu.Lock()
	n.fetchers.close()
	n.reconcileMu.Unlock()
	n.stopLifecycle()
	n.logger.Error("broker fenced: its log directory is offline; restart it once the disk is repaired", "err", n.offlineErr)
}
