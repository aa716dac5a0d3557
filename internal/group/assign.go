package group

// The server-side assignors of KIP-848 consumer groups
// (group.consumer.assignors): "uniform", balanced and sticky, and "range",
// contiguous ranges of each topic. Both are pure functions of the members
// (sorted by id), their subscribed topics and, for uniform, the previous
// target.

import (
	"slices"
	"strings"
)

type assignTopic struct {
	id         [16]byte
	name       string
	partitions int32
}

type assignMember struct {
	id     string
	topics []assignTopic // sorted by name
	prev   Assignment    // the previous target (uniform keeps what it can)
}

// assignUniform spreads every subscribed partition so that members' counts
// differ by at most one where their subscriptions allow, keeping each
// partition with its previous member when that stays balanced.
func assignUniform(members []assignMember) map[string]Assignment {
	out := make(map[string]Assignment, len(members))
	counts := make(map[string]int, len(members))
	eligible := map[[16]byte][]string{} // topic -> members subscribed
	var topics []assignTopic
	for _, m := range members {
		out[m.id] = Assignment{}
		for _, t := range m.topics {
			if _, ok := eligible[t.id]; !ok {
				topics = append(topics, t)
			}
			eligible[t.id] = append(eligible[t.id], m.id)
		}
	}
	slices.SortFunc(topics, func(a, b assignTopic) int { return strings.Compare(a.name, b.name) })
	total, subscribers := 0, 0
	for _, t := range topics {
		total += int(t.partitions)
	}
	for _, m := range members {
		if len(m.topics) > 0 {
			subscribers++
		}
	}
	if subscribers == 0 {
		return out
	}
	// floor for everyone; extra members may hold one more.
	floor, extra := total/subscribers, total%subscribers
	taken := map[topicPart]bool{}
	give := func(id string, tp topicPart) {
		out[id][tp.id] = append(out[id][tp.id], tp.p)
		counts[id]++
		taken[tp] = true
	}
	// Sticky pass: members keep previous partitions up to the floor, then
	// one more while extra places remain.
	for _, pass := range []int{0, 1} {
		for _, m := range members {
			for _, id := range m.prev.SortedTopicIDs() {
				if !slices.Contains(eligible[id], m.id) {
					continue
				}
				parts := partitionsOf(topics, id)
				for _, p := range m.prev[id] {
					tp := topicPart{id, p}
					if p >= parts || taken[tp] {
						continue
					}
					switch {
					case counts[m.id] < floor:
					case pass == 1 && counts[m.id] == floor && extra > 0:
						extra--
					default:
						continue
					}
					give(m.id, tp)
				}
			}
		}
	}
	// The rest go to the least loaded eligible member (ties: the first
	// by id), the topics fewest members subscribe to first, so that with
	// mixed subscriptions a member able to take any topic takes the rest.
	byConstraint := slices.Clone(topics)
	slices.SortStableFunc(byConstraint, func(a, b assignTopic) int { return len(eligible[a.id]) - len(eligible[b.id]) })
	for _, t := range byConstraint {
		for p := range t.partitions {
			tp := topicPart{t.id, p}
			if taken[tp] {
				continue
			}
			var best string
			for _, id := range eligible[t.id] {
				if best == "" || counts[id] < counts[best] {
					best = id
				}
			}
			give(best, tp)
		}
	}
	for _, a := range out {
		for id := range a {
			slices.Sort(a[id])
		}
	}
	return out
}

func partitionsOf(topics []assignTopic, id [16]byte) int32 {
	for _, t := range topics {
		if t.id == id {
			return t.partitions
		}
	}
	return 0
}

// assignRange gives each topic's subscribers contiguous ranges, the first
// members by id one partition more when it does not divide evenly.
func assignRange(members []assignMember) map[string]Assignment {
	out := make(map[string]Assignment, len(members))
	subs := map[[16]byte][]string{}
	parts := map[[16]byte]int32{}
	for _, m := range members {
		out[m.id] = Assignment{}
		for _, t := range m.topics {
			subs[t.id] = append(subs[t.id], m.id)
			parts[t.id] = t.partitions
		}
	}
	for id, ms := range subs {
		n, k := parts[id], int32(len(ms))
		per, rest := n/k, n%k
		next := int32(0)
		for i, mid := range ms {
			c := per
			if int32(i) < rest {
				c++
			}
			for p := next; p < next+c; p++ {
				out[mid][id] = append(out[mid][id], p)
			}
			next += c
		}
	}
	return out
}
