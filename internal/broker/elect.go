package broker

// ElectLeaders (key 43) v0-2, forwarded to the active controller like the
// other admin requests. v0 always asks for preferred elections; v1+ carry
// the election type (0 preferred, 1 unclean) and a top-level error. Null
// topics mean every partition, whose answer leaves out the partitions that
// needed no election, as Kafka's controller does. The elections are one
// metadata batch; the answer comes once it is committed.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/server"
)

func handleElectLeaders(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	typ := req.ElectionType
	if req.Version == 0 {
		typ = controller.ElectPreferred
	}
	var parts controller.TopicPartitions
	if req.Topics != nil {
		parts = controller.TopicPartitions{}
		for _, t := range req.Topics {
			parts[t.Topic] = append(parts[t.Topic], t.Partitions...)
		}
	}
	results, err := b.ctrl.ElectLeaders(ctx, typ, parts, false)
	if err != nil {
		code := b.errorCode(err)
		if errors.Is(err, controller.ErrInvalidElectionType) {
			code = kerr.InvalidRequest.Code
		}
		setElectLeadersError(resp, req, code)
		return done(resp)
	}
	b.cfg.OnMetadataChange()
	byTopic := map[string]int{}
	for _, r := range results {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = r.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition = r.Partition
		if r.Err != nil {
			rp.ErrorCode = b.errorCode(r.Err)
			msg := r.Err.Error()
			rp.ErrorMessage = &msg
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	return done(resp)
}

// setElectLeadersError fails the whole request with code: v0 has no
// top-level error, so every named partition carries it too.
func setElectLeadersError(resp *kmsg.ElectLeadersResponse, req *kmsg.ElectLeadersRequest, code int16) {
	resp.ErrorCode = code
	for _, t := range req.Topics {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
}
