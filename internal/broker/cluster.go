package broker

// DescribeCluster (key 60) v0-2 and DescribeLogDirs (key 35) v0-4.
//
// DescribeCluster lists the unfenced brokers (endpoint type 1) and names the
// active controller (-1 during an election); v2 with include_fenced_brokers
// (KIP-1073) lists the fenced ones too, flagged is_fenced. Controller
// endpoints (type 2, KIP-919) are not exposed and answer
// UNSUPPORTED_ENDPOINT_TYPE. DescribeLogDirs reports this node's one data
// directory with each hosted partition's size, and its total and usable bytes
// (v4+).

import (
	"context"
	"maps"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/gregor-dev/gregor/internal/server"
)

func handleDescribeCluster(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	img := b.image()
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return done(resp)
	}
	resp.ClusterID = img.ClusterID
	resp.ControllerID = b.controllerID(img)
	resp.ClusterAuthorizedOperations = authorizedOps(req.IncludeClusterAuthorizedOperations, allClusterOps)
	for _, id := range slices.Sorted(maps.Keys(img.Brokers)) {
		br := img.Brokers[id]
		host, port, ok := br.Endpoint(listenerOf(sreq))
		if !ok || (br.Fenced && !req.IncludeFencedBrokers) {
			continue
		}
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port, db.IsFenced = br.NodeID, host, port, br.Fenced
		if br.Rack != "" {
			rack := br.Rack
			db.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, db)
	}
	return done(resp)
}

func handleDescribeLogDirs(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.cfg.LogDir
	dir.TotalBytes, dir.UsableBytes = -1, -1
	var st unix.Statfs_t
	if err := unix.Statfs(b.cfg.LogDir, &st); err == nil {
		dir.TotalBytes = int64(st.Blocks) * st.Bsize
		dir.UsableBytes = int64(st.Bavail) * st.Bsize
	}
	want := func(string, int32) bool { return true }
	if req.Topics != nil {
		set := make(map[string]map[int32]bool)
		for _, t := range req.Topics {
			set[t.Topic] = make(map[int32]bool)
			for _, p := range t.Partitions {
				set[t.Topic][p] = true
			}
		}
		want = func(topic string, p int32) bool { return set[topic][p] }
	}
	byTopic := make(map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition)
	for _, p := range b.replicas.All() {
		if !want(p.Topic, p.Index) {
			continue
		}
		dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		dp.Partition = p.Index
		dp.Size = p.Size()
		dp.OffsetLag = 0
		byTopic[p.Topic] = append(byTopic[p.Topic], dp)
	}
	names := make([]string, 0, len(byTopic))
	for n := range byTopic {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = n
		dt.Partitions = byTopic[n]
		sort.Slice(dt.Partitions, func(i, j int) bool { return dt.Partitions[i].Partition < dt.Partitions[j].Partition })
		dir.Topics = append(dir.Topics, dt)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return done(resp)
}
