package broker

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/txn"
)

// errorCodes is the one table from domain errors to Kafka error codes. The
// first matching entry (errors.Is) wins; anything unlisted is
// UNKNOWN_SERVER_ERROR and logged.
var errorCodes = []struct {
	err  error
	code *kerr.Error
}{
	// The coordinators' errors come first: a failed write to a state
	// partition wraps the log's own error (not the leader, too few
	// replicas), and a coordinator answers as Kafka's does, NOT_COORDINATOR
	// or COORDINATOR_NOT_AVAILABLE, never NOT_LEADER_OR_FOLLOWER or
	// NOT_ENOUGH_REPLICAS, which a client's JoinGroup or EndTxn does not
	// retry.
	{group.ErrUnknownMemberID, kerr.UnknownMemberID},
	{group.ErrIllegalGeneration, kerr.IllegalGeneration},
	{group.ErrRebalanceInProgress, kerr.RebalanceInProgress},
	{group.ErrMemberIDRequired, kerr.MemberIDRequired},
	{group.ErrFencedInstanceID, kerr.FencedInstanceID},
	{group.ErrGroupMaxSizeReached, kerr.GroupMaxSizeReached},
	{group.ErrInvalidSessionTimeout, kerr.InvalidSessionTimeout},
	{group.ErrInconsistentGroupProtocol, kerr.InconsistentGroupProtocol},
	{group.ErrInvalidGroupID, kerr.InvalidGroupID},
	{group.ErrMemberMetadataTooLarge, kerr.InvalidRequest},
	{group.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{group.ErrNotCoordinator, kerr.NotCoordinator},
	{group.ErrCoordinatorLoading, kerr.CoordinatorLoadInProgress},
	{group.ErrNonEmptyGroup, kerr.NonEmptyGroup},
	{group.ErrGroupIDNotFound, kerr.GroupIDNotFound},
	{group.ErrGroupSubscribedToTopic, kerr.GroupSubscribedToTopic},
	{group.ErrUnknownTopicOrPartition, kerr.UnknownTopicOrPartition},
	{group.ErrOffsetMetadataTooLarge, kerr.OffsetMetadataTooLarge},
	{group.ErrFencedMemberEpoch, kerr.FencedMemberEpoch},
	{group.ErrStaleMemberEpoch, kerr.StaleMemberEpoch},
	{group.ErrUnreleasedInstanceID, kerr.UnreleasedInstanceID},
	{group.ErrUnsupportedAssignor, kerr.UnsupportedAssignor},
	{group.ErrInvalidRegex, kerr.InvalidRegularExpression},
	{group.ErrInvalidRequest, kerr.InvalidRequest},
	{group.ErrUnsupportedVersion, kerr.UnsupportedVersion},
	{group.ErrNotConsumerGroup, kerr.GroupIDNotFound},
	{txn.ErrInvalidProducerIDMapping, kerr.InvalidProducerIDMapping},
	{txn.ErrProducerFenced, kerr.ProducerFenced},
	{txn.ErrInvalidTxnState, kerr.InvalidTxnState},
	{txn.ErrConcurrentTransactions, kerr.ConcurrentTransactions},
	{txn.ErrInvalidTransactionTimeout, kerr.InvalidTransactionTimeout},
	{txn.ErrTransactionalIDNotFound, kerr.TransactionalIDNotFound},
	{txn.ErrNotCoordinator, kerr.NotCoordinator},
	{txn.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{txn.ErrCoordinatorLoading, kerr.CoordinatorLoadInProgress},
	{txn.ErrClosed, kerr.NotCoordinator},
	{txn.ErrTransactionAbortable, kerr.TransactionAbortable},
	{replica.ErrNotLeader, kerr.NotLeaderForPartition},
	{replica.ErrNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend},
	{replica.ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	{replica.ErrNotFollower, kerr.NotLeaderForPartition},
	{replica.ErrMessageTooLarge, kerr.MessageTooLarge},
	{errInvalidTimestamp, kerr.InvalidTimestamp},
	{errInvalidQuotaRequest, kerr.InvalidRequest},
	{replica.ErrClosed, kerr.NotLeaderForPartition},
	{replica.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{replica.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{replica.ErrUnknownLeaderEpoch, kerr.UnknownLeaderEpoch},
	{replica.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{replica.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{replica.ErrCoordinatorFenced, kerr.TransactionCoordinatorFenced},
	{record.ErrCRCMismatch, kerr.CorruptMessage},
	{record.ErrUnsupportedMagic, kerr.UnsupportedForMessageFormat},
	{record.ErrUnknownCodec, kerr.CorruptMessage},
	{record.ErrEmptyBatch, kerr.InvalidRecord},
	{record.ErrTooLarge, kerr.MessageTooLarge},
	{record.ErrCorrupt, kerr.CorruptMessage},
	{commitlog.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{commitlog.ErrLogFailed, kerr.KafkaStorageError},
	// A log closed under a request: its partition was deleted (moved off
	// this broker, or its topic deleted) or the node is stopping. The
	// client is to find the partition elsewhere, as Kafka answers.
	{commitlog.ErrClosed, kerr.NotLeaderForPartition},
	{controller.ErrTopicExists, kerr.TopicAlreadyExists},
	{controller.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{controller.ErrInvalidReplicationFactor, kerr.InvalidReplicationFactor},
	{controller.ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment},
	{controller.ErrInvalidPartitions, kerr.InvalidPartitions},
	{controller.ErrNotController, kerr.NotController},
	{controller.ErrNotPartitionLeader, kerr.NotLeaderForPartition},
	{controller.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{controller.ErrInvalidUpdate, kerr.InvalidUpdateVersion},
	{controller.ErrIneligibleReplica, kerr.IneligibleReplica},
	{controller.ErrInvalidISR, kerr.InvalidRequest},
	{controller.ErrStaleBrokerEpoch, kerr.StaleBrokerEpoch},
	{controller.ErrInconsistentClusterID, kerr.InconsistentClusterID},
	{controller.ErrUnknownPartition, kerr.UnknownTopicOrPartition},
	{controller.ErrInvalidConfigResource, kerr.InvalidRequest},
	{controller.ErrInvalidChange, kerr.InvalidRequest},
	{controller.ErrInvalidConfig, kerr.InvalidConfig},
	{controller.ErrDuplicateVoter, kerr.DuplicateVoter},
	{controller.ErrVoterNotFound, kerr.VoterNotFound},
	{controller.ErrNotObserver, kerr.InvalidRequest},
	{controller.ErrUnreachable, kerr.InvalidRequest},
	{controller.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress},
	{controller.ErrBrokerNotRegistered, kerr.BrokerIDNotRegistered},
	{controller.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
	{controller.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable},
	{controller.ErrEligibleLeadersNotAvailable, kerr.EligibleLeadersNotAvailable},
	{controller.ErrInvalidElectionType, kerr.InvalidRequest},
	{controller.ErrInvalidQuota, kerr.InvalidRequest},
	{controller.ErrTooManyQuotaChanges, kerr.PolicyViolation},
	{controller.ErrInvalidACL, kerr.InvalidRequest},
	{controller.ErrTooManyACLChanges, kerr.PolicyViolation},
	{errInvalidACLRequest, kerr.InvalidRequest},
	{controller.ErrScramDuplicate, kerr.DuplicateResource},
	{controller.ErrScramUnacceptable, kerr.UnacceptableCredential},
	{controller.ErrScramMechanism, kerr.UnsupportedSaslMechanism},
	{controller.ErrScramNotFound, kerr.ResourceNotFound},
	{errTopicNameEmpty, kerr.InvalidTopicException},
	{errTopicNameLength, kerr.InvalidTopicException},
	{errTopicNameDots, kerr.InvalidTopicException},
	{errTopicNameIllegal, kerr.InvalidTopicException},
	{config.ErrUnknownConfig, kerr.InvalidConfig},
	{replica.ErrTxnNotVerified, kerr.InvalidTxnState},
	{context.DeadlineExceeded, kerr.RequestTimedOut},
	{context.Canceled, kerr.RequestTimedOut},
}

// errorCode maps a domain error to a Kafka error code (0 for nil).
func (b *Broker) errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	b.logger.Error("unmapped error answered as UNKNOWN_SERVER_ERROR", "err", err)
	return kerr.UnknownServerError.Code
}

// errorMessage is the text for responses that carry an error message.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
