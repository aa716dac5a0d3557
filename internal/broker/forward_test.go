package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

// leaderCtrl is a controller that is not the active one: node 2 is.
type leaderCtrl struct {
	Controller
	leader int32
	img    *metadata.Image
}

func (c *leaderCtrl) Leader() (int32, bool) { return c.leader, c.leader >= 0 }
func (c *leaderCtrl) Image() *metadata.Image {
	if c.img == nil {
		return &metadata.Image{}
	}
	return c.img
}
func (c *leaderCtrl) CreateTopic(context.Context, controller.TopicSpec) (metadata.Topic, error) {
	return metadata.Topic{}, controller.ErrNotController
}

// flakyController answers like an active controller that is being elected:
// the first answers cannot be had (a dial error), then it answers
// NOT_CONTROLLER (the node this broker took for the leader lost the
// election), then it creates the topic.
func flakyController(dialErrors, notController int) (func(context.Context, kmsg.Request) (kmsg.Response, error), *atomic.Int32) {
	var calls atomic.Int32
	return func(_ context.Context, req kmsg.Request) (kmsg.Response, error) {
		n := int(calls.Add(1))
		switch {
		case n <= dialErrors:
			return nil, errors.New("dial tcp: connection refused")
		case n <= dialErrors+notController:
			return notControllerResponse(req), nil
		}
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, t := range req.(*kmsg.CreateTopicsRequest).Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = t.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}, &calls
}

func createTopicsRequest(name string) *server.Request {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	req.Topics = append(req.Topics, rt)
	return &server.Request{Key: 19, Version: 7, Body: req}
}

// TestForwardRetriesUntilTheControllerAnswers: a broker forwarding to a
// controller that cannot be reached, or that answers NOT_CONTROLLER, tries
// again (Kafka's controller channel requeues the request) instead of handing
// the client NOT_CONTROLLER: kafkajs gave up createTopics after a minute of
// NOT_CONTROLLER on a cluster that was ready.
func TestForwardRetriesUntilTheControllerAnswers(t *testing.T) {
	fwd, calls := flakyController(2, 3)
	b := New(Config{NodeID: 1, Forward: fwd}, &leaderCtrl{leader: 2}, nil, nil, nil)
	defer b.Close()
	resp, forwarded := b.forward(context.Background(), createTopicsRequest("t"))
	if !forwarded {
		t.Fatal("handled locally on a node that is not the active controller")
	}
	r := resp.(*kmsg.CreateTopicsResponse)
	if len(r.Topics) != 1 || r.Topics[0].ErrorCode != 0 {
		t.Fatalf("answer %+v, want the topic created", r.Topics)
	}
	if n := calls.Load(); n != 6 {
		t.Fatalf("%d forwarding attempts, want 6", n)
	}

	// The topic creation a request on this broker triggers goes the same way.
	fwd, _ = flakyController(1, 1)
	b2 := New(Config{NodeID: 1, Forward: fwd}, &leaderCtrl{leader: 2}, nil, nil, nil)
	defer b2.Close()
	if _, err := b2.createTopic(context.Background(), controller.TopicSpec{Name: "t", NumPartitions: 1, ReplicationFactor: 1}); !errors.Is(err, errCreatedOnController) {
		t.Fatalf("createTopic: %v, want it created on the controller", err)
	}
}

// TestForwardTimesOutWithoutNotController: when no controller answers for
// real within the forwarding timeout, the client gets REQUEST_TIMED_OUT, as
// from Kafka's ForwardingManager, never NOT_CONTROLLER (no leader known at
// all, or a leader that keeps answering NOT_CONTROLLER).
func TestForwardTimesOutWithoutNotController(t *testing.T) {
	old := forwardTimeout
	forwardTimeout = 300 * time.Millisecond
	defer func() { forwardTimeout = old }()
	for _, tc := range []struct {
		name   string
		leader int32
	}{{"no leader known", -1}, {"leader answers NOT_CONTROLLER", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			fwd, _ := flakyController(0, 1<<30)
			b := New(Config{NodeID: 1, Forward: fwd}, &leaderCtrl{leader: tc.leader}, nil, nil, nil)
			defer b.Close()
			resp, forwarded := b.forward(context.Background(), createTopicsRequest("t"))
			if !forwarded {
				t.Fatal("handled locally: the local controller answers NOT_CONTROLLER")
			}
			r := resp.(*kmsg.CreateTopicsResponse)
			if len(r.Topics) != 1 || r.Topics[0].ErrorCode != kerr.RequestTimedOut.Code {
				t.Fatalf("answer %+v, want REQUEST_TIMED_OUT for the topic", r.Topics)
			}
		})
	}
}

// TestForwardHandledHereOnTheActiveController: the active controller
// handles a request itself.
func TestForwardHandledHereOnTheActiveController(t *testing.T) {
	fwd, calls := flakyController(0, 0)
	b := New(Config{NodeID: 2, Forward: fwd}, &leaderCtrl{leader: 2}, nil, nil, nil)
	defer b.Close()
	if _, forwarded := b.forward(context.Background(), createTopicsRequest("t")); forwarded || calls.Load() != 0 {
		t.Fatalf("forwarded %v after %d calls, want handled here", forwarded, calls.Load())
	}
}

// stepDownCtrl names itself the leader while its Raft state has already
// stepped down (hashicorp/raft clears its leader a moment after): its
// commands fail NOT_CONTROLLER the first times.
type stepDownCtrl struct {
	leaderCtrl
	fails atomic.Int32
}

func (c *stepDownCtrl) CreateTopic(context.Context, controller.TopicSpec) (metadata.Topic, error) {
	if c.fails.Add(-1) >= 0 {
		return metadata.Topic{}, controller.ErrNotController
	}
	return metadata.Topic{Name: "t"}, nil
}

// TestCreateTopicNeverNotController: a topic creation on a node that names
// itself the leader but answers NOT_CONTROLLER tries again rather than
// handing NOT_CONTROLLER to the client that caused it (a Metadata
// auto-creation answered NOT_CONTROLLER once in CI,
// TestClusterAutoCreateWithoutQuorum); it ends when ctx does.
func TestCreateTopicNeverNotController(t *testing.T) {
	fwd, calls := flakyController(0, 0)
	c := &stepDownCtrl{leaderCtrl: leaderCtrl{leader: 1}}
	c.fails.Store(3)
	b := New(Config{NodeID: 1, Forward: fwd}, c, nil, nil, nil)
	defer b.Close()
	spec := controller.TopicSpec{Name: "t", NumPartitions: 1, ReplicationFactor: 1}
	if _, err := b.createTopic(context.Background(), spec); err != nil || calls.Load() != 0 {
		t.Fatalf("createTopic: %v after %d forwards, want created here", err, calls.Load())
	}
	c.fails.Store(1 << 30)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := b.createTopic(ctx, spec); errors.Is(err, controller.ErrNotController) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("createTopic while the node keeps answering NOT_CONTROLLER: %v, want the deadline", err)
	}
}
