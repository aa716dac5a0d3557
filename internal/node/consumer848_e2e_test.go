package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/testkit"
)

// consumerProps make KIP-848 rebalances quick: a member learns of a new
// assignment at its next heartbeat.
var consumerProps = map[string]string{
	"group.consumer.heartbeat.interval.ms": "200",
	"group.consumer.session.timeout.ms":    "3000",
}

// TestE2EConsumerGroupProtocol (KIP-848): franz-go's server-side balancer
// consumers join, grow to three and shrink to one over six partitions,
// with the coordinator assigning. Members leave cleanly, so every record
// is consumed exactly once and everything is committed; while two are in
// the group ConsumerGroupDescribe shows them Stable, holding disjoint
// halves of the partitions.
func TestE2EConsumerGroupProtocol(t *testing.T) {
	n := startNode(t, t.TempDir(), consumerProps)
	adm, cl := newAdmin(t, n)
	for _, tc := range []struct {
		name, assignor string
		balancer       kgo.GroupBalancer
	}{
		{"uniform", "uniform", kgo.StickyBalancer()},
		{"range", "range", kgo.RangeBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := "kip848-"+tc.name, "g-kip848-"+tc.name
			createTopic(t, adm, topic, 6, nil)
			s := &seen{counts: map[string]int{}}
			opts := []kgo.Opt{kgo.Balancers(tc.balancer), kgo.ServerSideBalancer()}
			a := startMember(t, n, s, group, topic, opts...)
			b := startMember(t, n, s, group, topic, opts...)
			produceN(t, n, topic, 0, 300)
			s.waitFor(t, 300, 20*time.Second)

			testkit.Eventually(t, 20*time.Second, "two members, stable, six partitions between them", func() error {
				req := kmsg.NewPtrConsumerGroupDescribeRequest()
				req.Groups = []string{group}
				resp, err := req.RequestWith(testCtx(t, 5*time.Second), cl)
				if err != nil {
					return err
				}
				g := resp.Groups[0]
				if g.ErrorCode != 0 || g.State != "Stable" || len(g.Members) != 2 || g.AssignorName != tc.assignor {
					return fmt.Errorf("code %d, state %s, %d members, assignor %q", g.ErrorCode, g.State, len(g.Members), g.AssignorName)
				}
				owned := map[int32]int{}
				for _, m := range g.Members {
					if m.MemberEpoch != g.Epoch {
						return fmt.Errorf("member at epoch %d, group at %d", m.MemberEpoch, g.Epoch)
					}
					for _, tp := range m.Assignment.TopicPartitions {
						for _, p := range tp.Partitions {
							owned[p]++
						}
					}
				}
				if len(owned) != 6 {
					return fmt.Errorf("partitions owned: %v", owned)
				}
				for p, k := range owned {
					if k != 1 {
						t.Fatalf("partition %d held by %d members at once", p, k)
					}
				}
				return nil
			})

			c := startMember(t, n, s, group, topic, opts...)
			produceN(t, n, topic, 300, 300)
			s.waitFor(t, 600, 20*time.Second)
			b.close()
			c.close()
			produceN(t, n, topic, 600, 300)
			s.waitFor(t, 900, 20*time.Second)
			a.close()
			s.mu.Lock()
			defer s.mu.Unlock()
			for v, k := range s.counts {
				if k != 1 {
					t.Errorf("record %s consumed %d times", v, k)
				}
			}
			offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
			if sum != 900 {
				t.Fatalf("committed offsets sum to %d, want 900", sum)
			}
		})
	}
}
