package broker

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/statelog"
	"github.com/gregor-dev/gregor/internal/txn"
)

// A coordinator's failed write wraps the state log's error, which wraps the
// replica's: the coordinator's meaning must win. The chaos suite saw a
// JoinGroup answered NOT_LEADER_FOR_PARTITION (which franz-go does not retry
// for a join) when the __consumer_offsets leader moved under the write.
func TestErrorCodeCoordinatorWins(t *testing.T) {
	b := &Broker{logger: slog.New(slog.DiscardHandler)}
	notLeader := fmt.Errorf("%w: %w", statelog.ErrNotLeader, replica.ErrNotLeader)
	cases := []struct {
		err  error
		want *kerr.Error
	}{
		{fmt.Errorf("%w: %w", group.ErrNotCoordinator, notLeader), kerr.NotCoordinator},
		{fmt.Errorf("%w: %w", group.ErrCoordinatorNotAvailable, fmt.Errorf("%w: %w", statelog.ErrNotEnoughReplicas, replica.ErrNotEnoughReplicas)), kerr.CoordinatorNotAvailable},
		{fmt.Errorf("%w: %w", group.ErrCoordinatorNotAvailable, context.DeadlineExceeded), kerr.CoordinatorNotAvailable},
		{fmt.Errorf("%w: %w", txn.ErrNotCoordinator, notLeader), kerr.NotCoordinator},
		{fmt.Errorf("%w: %w", txn.ErrCoordinatorNotAvailable, replica.ErrNotEnoughReplicas), kerr.CoordinatorNotAvailable},
		// The produce path's own errors are unchanged.
		{replica.ErrNotLeader, kerr.NotLeaderForPartition},
		{replica.ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	}
	for _, c := range cases {
		if got := b.errorCode(c.err); got != c.want.Code {
			t.Errorf("errorCode(%v) = %d, want %d (%s)", c.err, got, c.want.Code, c.want.Message)
		}
	}
}
