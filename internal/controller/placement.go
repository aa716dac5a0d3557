package controller

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Replica placement for new partitions (CreateTopics, CreatePartitions and
// auto-created topics), on the active controller.
//
// Kafka's rack-aware assignment (AdminUtils.assignReplicasToBrokersRackAware)
// arranges the brokers in a rack-alternating list (the first broker of each
// rack in rack order, then the second of each, ...) and walks it so that a
// partition's replicas fall on distinct racks as long as there are racks
// left. Kafka starts the walk at a random broker, which balances only on
// average and ignores the partitions that already exist. Gregor keeps the
// rack rule and replaces the randomness with counts: a partition's leader
// (its first replica, the preferred leader) is the broker with the fewest
// preferred leaderships, then the fewest replicas, over every partition of
// the cluster including those placed earlier in the same request; each
// further replica is the broker with the fewest replicas among those on a
// rack the partition does not use yet (any broker once every rack is used).
// Ties go to the broker that comes first in the rack-alternating list,
// starting from a position that moves by one per partition, so an empty
// cluster gets Kafka's striped layout and a loaded one fills its least
// loaded brokers first. Only unfenced brokers receive replicas.
//
// A broker without broker.rack counts as being on the rack "", so a cluster
// without racks places by counts alone.

// placement is the state of one placement decision: the candidate brokers
// and the load of every registered broker.
type placement struct {
	brokers  []int32 // unfenced, rack-alternating order
	rack     map[int32]string
	racks    int           // distinct racks among brokers
	leaders  map[int32]int // preferred leaderships (first replicas) per broker
	replicas map[int32]int // replicas per broker
	next     int           // rotation of the tie-break order
}

func newPlacement(img *metadata.Image) *placement {
	pl := &placement{rack: map[int32]string{}, leaders: map[int32]int{}, replicas: map[int32]int{}}
	byRack := map[string][]int32{}
	for _, id := range img.UnfencedBrokers() {
		r := img.Brokers[id].Rack
		pl.rack[id] = r
		byRack[r] = append(byRack[r], id) // ascending ids: UnfencedBrokers is sorted
	}
	pl.racks = len(byRack)
	pl.brokers = rackAlternating(byRack)
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if len(p.Replicas) > 0 {
				pl.leaders[p.Replicas[0]]++
			}
			for _, r := range p.Replicas {
				pl.replicas[r]++
			}
			pl.next++
		}
	}
	return pl
}

// rackAlternating interleaves the racks' brokers: the first broker of every
// rack (racks in name order), then the second of every rack, and so on.
func rackAlternating(byRack map[string][]int32) []int32 {
	racks := slices.Sorted(maps.Keys(byRack))
	var out []int32
	for i := 0; ; i++ {
		added := false
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// place returns the replicas of count new partitions of replication factor
// rf and counts them into the load.
func (pl *placement) place(count, rf int) ([][]int32, error) {
	n := len(pl.brokers)
	if rf <= 0 || rf > n {
		return nil, fmt.Errorf("%w: %d with %d available brokers", ErrInvalidReplicationFactor, rf, n)
	}
	out := make([][]int32, count)
	for i := range out {
		start := pl.next % n
		pl.next++
		// pos orders the brokers for ties: the rack-alternating list read
		// from a position that moves with every partition.
		pos := func(from, idx int) int { return (idx - from + n) % n }
		best := func(ok func(int32) bool, less func(a, b int) int) int {
			pick := -1
			for idx, id := range pl.brokers {
				if !ok(id) {
					continue
				}
				if pick < 0 || less(idx, pick) < 0 {
					pick = idx
				}
			}
			return pick
		}
		leaderIdx := best(func(int32) bool { return true }, func(a, b int) int {
			ia, ib := pl.brokers[a], pl.brokers[b]
			return cmp.Or(cmp.Compare(pl.leaders[ia], pl.leaders[ib]),
				cmp.Compare(pl.replicas[ia], pl.replicas[ib]),
				cmp.Compare(pos(start, a), pos(start, b)))
		})
		replicas := []int32{pl.brokers[leaderIdx]}
		usedRacks := map[string]bool{pl.rack[replicas[0]]: true}
		for len(replicas) < rf {
			// A rack the partition does not use yet, while there is one.
			newRack := len(usedRacks) < pl.racks
			eligible := func(id int32) bool {
				return !slices.Contains(replicas, id) && (!newRack || !usedRacks[pl.rack[id]])
			}
			idx := best(eligible, func(a, b int) int {
				ia, ib := pl.brokers[a], pl.brokers[b]
				return cmp.Or(cmp.Compare(pl.replicas[ia], pl.replicas[ib]),
					cmp.Compare(pos(leaderIdx, a), pos(leaderIdx, b)))
			})
			id := pl.brokers[idx]
			replicas = append(replicas, id)
			usedRacks[pl.rack[id]] = true
		}
		pl.leaders[replicas[0]]++
		for _, id := range replicas {
			pl.replicas[id]++
		}
		out[i] = replicas
	}
	return out, nil
}
