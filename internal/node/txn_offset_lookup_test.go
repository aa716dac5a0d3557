package node_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2ETxnOffsetCommitWithoutTxnCoordinator: a TxnOffsetCommit whose
// transaction coordinator cannot be found (here __transaction_state does
// not exist yet) is COORDINATOR_NOT_AVAILABLE, as in Kafka, whose
// verification finds no coordinator; it was NOT_COORDINATOR, which tells
// the client its group coordinator moved.
func TestE2ETxnOffsetCommitWithoutTxnCoordinator(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	_, cl := newAdmin(t, n)
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = "nobody", "g", 7, 0, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Offset = 1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.TxnOffsetCommitResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("response %+v", resp)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("TxnOffsetCommit with no transaction coordinator: %v, want COORDINATOR_NOT_AVAILABLE", kerr.ErrorForCode(code))
	}
}
