package node_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestE2EAuthorizedOperations: asked for a resource's authorized
// operations, a broker without an authorizer answers every operation the
// resource type supports, as Kafka does (librdkafka's 0081_admin expects 7
// cluster operations); not asked, Kafka's "not requested" value.
func TestE2EAuthorizedOperations(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(3, 10)
	md10 := newClient(t, n, kgo.MaxVersions(vs))
	createTopic(t, adm, "ops", 1, nil)
	ctx := testCtx(t, 15*time.Second)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "ops", Partition: 0, At: 0, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "ops-group", offs); err != nil {
		t.Fatalf("commit to create the group: %v", err)
	}
	const (
		unset   = -2147483648
		cluster = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12 // 7 operations
		topic   = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11
		group   = 1<<3 | 1<<6 | 1<<8
	)
	for _, asked := range []bool{true, false} {
		want := func(ops int32) int32 {
			if asked {
				return ops
			}
			return unset
		}
		dc := kmsg.NewPtrDescribeClusterRequest()
		dc.IncludeClusterAuthorizedOperations = asked
		if got := rawRequest[*kmsg.DescribeClusterResponse](t, cl, dc).ClusterAuthorizedOperations; got != want(cluster) {
			t.Errorf("DescribeCluster (asked %v): cluster operations %#x, want %#x", asked, got, want(cluster))
		}
		md := kmsg.NewPtrMetadataRequest() // v10: cluster operations left Metadata in v11
		mt := kmsg.NewMetadataRequestTopic()
		name := "ops"
		mt.Topic = &name
		md.Topics = append(md.Topics, mt)
		md.IncludeClusterAuthorizedOperations, md.IncludeTopicAuthorizedOperations = asked, asked
		mr := rawRequest[*kmsg.MetadataResponse](t, md10, md)
		if mr.AuthorizedOperations != want(cluster) || len(mr.Topics) != 1 || mr.Topics[0].AuthorizedOperations != want(topic) {
			t.Errorf("Metadata v10 (asked %v): cluster %#x, topics %+v; want cluster %#x, topic %#x",
				asked, mr.AuthorizedOperations, mr.Topics, want(cluster), want(topic))
		}
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Groups = []string{"ops-group"}
		dg.IncludeAuthorizedOperations = asked
		gr := rawRequest[*kmsg.DescribeGroupsResponse](t, cl, dg)
		if len(gr.Groups) != 1 || gr.Groups[0].ErrorCode != 0 || gr.Groups[0].AuthorizedOperations != want(group) {
			t.Errorf("DescribeGroups (asked %v): %+v, want group operations %#x", asked, gr.Groups, want(group))
		}
	}
}
