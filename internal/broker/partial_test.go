package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/server"
)

// TestWithDeniedProduceAcks0: a produce with acks=0 that was refused in
// part has no answer to add the refusals to (its handler wrote the allowed
// part and answers nil): the connection is closed instead, as Kafka closes
// it, and no completion runs (one did, on nil, and panicked).
func TestWithDeniedProduceAcks0(t *testing.T) {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = 0
	closed := false
	sreq := &server.Request{Body: req, Close: func() { closed = true }}
	if c := withDenied(sreq, nil, []kmsg.Response{kmsg.NewPtrProduceResponse()}); c != nil {
		t.Fatal("an acks=0 produce got a completion")
	}
	if !closed {
		t.Fatal("the connection of a partly refused acks=0 produce was not closed")
	}
}

// TestMergeDenied: the refused elements are appended to the answer to the
// rest, also when its records are sent from files.
func TestMergeDenied(t *testing.T) {
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.Topics = []kmsg.ListOffsetsResponseTopic{{Topic: "orders"}}
	req := kmsg.NewPtrListOffsetsRequest()
	req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "secret", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0}}}}
	got := mergeDenied(&server.SplicedResponse{Response: resp}, []kmsg.Response{deniedResponse(req, codeTopic)})
	out := got.(*server.SplicedResponse).Response.(*kmsg.ListOffsetsResponse)
	if len(out.Topics) != 2 || out.Topics[1].Topic != "secret" || out.Topics[1].Partitions[0].ErrorCode != codeTopic {
		t.Fatalf("merged: %+v", out.Topics)
	}
}
