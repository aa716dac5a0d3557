package node_test

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterReplicationThrottle: Kafka's replication throttles, the way
// kafka-reassign-partitions --throttle sets them. A follower that comes
// back out of the ISR catches up at the throttled rate when the topic's
// leader.replication.throttled.replicas names the partition on its leader
// and the leader's leader.replication.throttled.rate is low (leader
// side), or when follower.replication.throttled.replicas names it on the
// follower and the follower's follower.replication.throttled.rate is low
// (follower side). Throttled bytes are measured over 11 one-second windows
// (about 10 s at first), so the follower may take about 10 s at the rate,
// plus one fetch over it, before it is held; the check allows that and a
// margin and still lies far below the 8 MB it would copy unthrottled.
// With the throttle removed it catches up and rejoins the ISR.
func TestClusterReplicationThrottle(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	props := map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "500"}
	c := startCluster(t, props)
	const rate = 100_000 // bytes per second
	// One side after the other in this test, not in subtests: the node a
	// side restarts must outlive it.
	for _, side := range []string{"leader", "follower"} {
		func() {
			topic := "throttle-" + side
			checkFor(t, "three unfenced brokers", func() bool {
				ids, _, err := describe(t, c.nodes[0])
				return err == nil && len(ids) == 3
			})
			createReplicated(t, c, topic, 1, nil)
			leader := leaderOf(c, topic, 0)
			fidx := int(leader.NodeID()) % 3 // another node
			follower := c.nodes[fidx]
			fid := follower.NodeID()
			// The rate first: a broker's own config is sent to it, so
			// the follower's must be set while it runs. It holds back
			// nothing until the topic names a replica.
			adm := kadm.NewClient(newClient(t, leader))
			ctx := testCtx(t, 30*time.Second)
			throttledOn := leader.NodeID()
			if side == "follower" {
				throttledOn = fid
			}
			rateStr := strconv.Itoa(rate)
			if r, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: side + ".replication.throttled.rate", Value: &rateStr}}, throttledOn); err != nil || r[0].Err != nil {
				t.Fatalf("set the throttled rate: %v %v", err, r)
			}
			if err := follower.Close(); err != nil {
				t.Fatal(err)
			}
			checkFor(t, "the stopped follower out of the ISR", func() bool {
				return !slices.Contains(isrOf(t, leader, topic, 0), fid)
			})
			cl := newClient(t, leader, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(10*time.Millisecond))
			const records = 8000 // 8 MB, random so that compression keeps it 8 MB
			for range records {
				value := make([]byte, 1000)
				rand.Read(value)
				cl.Produce(testCtx(t, 60*time.Second), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			if err := cl.Flush(testCtx(t, 60*time.Second)); err != nil {
				t.Fatal(err)
			}

			list := fmt.Sprintf("0:%d", throttledOn)
			if r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: side + ".replication.throttled.replicas", Value: &list}}, topic); err != nil || r[0].Err != nil {
				t.Fatalf("set the throttled replicas: %v %v", err, r)
			}
			checkFor(t, "every node applied the throttle", func() bool {
				for i, n := range c.nodes {
					if i == fidx {
						continue
					}
					rc, err := kadm.NewClient(newClient(t, n)).DescribeTopicConfigs(testCtx(t, 5*time.Second), topic)
					if err != nil {
						return false
					}
					v, err := rc.On(topic, nil)
					if err != nil {
						return false
					}
					found := false
					for _, cf := range v.Configs {
						found = found || cf.Key == side+".replication.throttled.replicas" && cf.MaybeValue() == list
					}
					if !found {
						return false
					}
				}
				return true
			})

			start := time.Now()
			follower = restartNode(t, c, fidx, props)
			c.nodes[fidx] = follower
			time.Sleep(4 * time.Second)
			st, _ := follower.Replica(topic, 0)
			elapsed := time.Since(start).Seconds()
			// Records of about 1 KB: the burst the empty windows allow
			// (10 windows at the rate), one fetch over (1 MB), the rate
			// since, and 1 MB of margin.
			allowed := int64((10*rate + 1<<20 + elapsed*rate + 1<<20) / 1000)
			if st.LogEndOffset > allowed {
				t.Fatalf("the throttled follower copied %d records in %.1f s, more than the %d the rate allows", st.LogEndOffset, elapsed, allowed)
			}
			t.Logf("%s side: %d of %d records copied in %.1f s at %d B/s", side, st.LogEndOffset, records, elapsed, rate)

			clear := []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: side + ".replication.throttled.replicas"}}
			if r, err := adm.AlterTopicConfigs(ctx, clear, topic); err != nil || r[0].Err != nil {
				t.Fatalf("clear the throttle: %v %v", err, r)
			}
			checkFor(t, "the follower caught up and back in the ISR", func() bool {
				st, _ := follower.Replica(topic, 0)
				return st.LogEndOffset >= records && slices.Contains(isrOf(t, leader, topic, 0), fid)
			})
		}()
	}
}
