package broker

// AlterPartitionReassignments (key 45) v0, ListPartitionReassignments (key
// 46) v0 and UnregisterBroker (key 64) v0, forwarded to the active
// controller like the other admin requests (Kafka 4's brokers forward all
// three). The reassignment itself is the controller's (controller/reassign.go).

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/server"
)

func handleAlterReassignments(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	var rs []controller.Reassignment
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			rs = append(rs, controller.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
		}
	}
	errs, err := b.ctrl.AlterReassignments(ctx, rs)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = b.errorCode(err), errorMessage(err)
		return done(resp)
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode, rp.ErrorMessage = b.errorCode(errs[i]), errorMessage(errs[i])
			rt.Partitions = append(rt.Partitions, rp)
			i++
		}
		resp.Topics = append(resp.Topics, rt)
	}
	b.cfg.OnMetadataChange()
	return done(resp)
}

// handleListReassignments lists the partitions with a
// reassignment in progress: every one when topics is null, else those of
// the named partitions (unknown names are left out, as Kafka does).
func handleListReassignments(b *Broker, _ context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	img := b.image()
	add := func(name string, parts []int32) {
		t := img.Topic(name)
		if t == nil {
			return
		}
		rt := kmsg.NewListPartitionReassignmentsResponseTopic()
		rt.Topic = name
		for _, id := range parts {
			if id < 0 || int(id) >= len(t.Partitions) || !t.Partitions[id].Reassigning() {
				continue
			}
			p := t.Partitions[id]
			rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			rp.Partition = id
			rp.Replicas = slices.Clone(p.Replicas)
			rp.AddingReplicas = append([]int32{}, p.AddingReplicas...)
			rp.RemovingReplicas = append([]int32{}, p.RemovingReplicas...)
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if req.Topics == nil {
		names := make([]string, 0, len(img.Topics))
		for name := range img.Topics {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			all := make([]int32, len(img.Topics[name].Partitions))
			for i := range all {
				all[i] = int32(i)
			}
			add(name, all)
		}
	} else {
		for _, t := range req.Topics {
			add(t.Topic, t.Partitions)
		}
	}
	return done(resp)
}

func handleUnregisterBroker(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.UnregisterBrokerRequest)
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	ctx, cancel := requestTimeout(ctx, 0)
	defer cancel()
	err := b.ctrl.UnregisterBroker(ctx, req.BrokerID)
	resp.ErrorCode, resp.ErrorMessage = b.errorCode(err), errorMessage(err)
	if err == nil {
		b.cfg.OnMetadataChange()
	}
	return done(resp)
}
