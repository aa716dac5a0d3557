package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// BenchmarkConsumerKeepalive is one keepalive heartbeat (nothing changed)
// of a member of a settled group, and the records it writes: its cost
// should not grow with the group's members or the cluster's topics.
func BenchmarkConsumerKeepalive(b *testing.B) {
	for _, size := range []struct{ members, topics int }{{10, 10}, {1000, 10}, {100, 5000}} {
		b.Run(fmt.Sprintf("members=%d/topics=%d", size.members, size.topics), func(b *testing.B) {
			img := &metadata.Image{Topics: map[string]*metadata.Topic{}, TopicsByID: map[[16]byte]*metadata.Topic{}}
			for i := range size.topics {
				t := &metadata.Topic{Name: fmt.Sprintf("t%d", i), ID: [16]byte{byte(i), byte(i >> 8), 1}, Partitions: make([]metadata.Partition, 4)}
				img.Topics[t.Name], img.TopicsByID[t.ID] = t, t
			}
			cg := newConsumerGroup(DefaultConsumerLimits())
			re := "t1.*"
			for i := range size.members {
				h := ConsumerHeartbeat{Version: 1, MemberID: fmt.Sprintf("m%d", i), RebalanceTimeout: time.Minute, Regex: &re, Owned: Assignment{}}
				cg.heartbeat(h, img, t0)
			}
			for round := 0; cg.state() != "Stable"; round++ { // settle: everyone at the target epoch
				if round == 10 {
					b.Fatalf("not settled: %s", cg.state())
				}
				for id, m := range cg.members {
					r := cg.heartbeat(ConsumerHeartbeat{Version: 1, MemberID: id, MemberEpoch: m.epoch, RebalanceTimeout: -1,
						Owned: copyAssignment(m.assigned)}, img, t0)
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			cg.changedRecords("g")
			h := ConsumerHeartbeat{Version: 1, MemberID: "m0", RebalanceTimeout: -1}
			b.ResetTimer()
			for range b.N {
				h.MemberEpoch = cg.members["m0"].epoch
				if r := cg.heartbeat(h, img, t0); r.Err != nil {
					b.Fatal(r.Err)
				}
				cg.changedRecords("g")
			}
		})
	}
}
