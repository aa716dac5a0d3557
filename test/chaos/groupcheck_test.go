package chaos

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// The committed offset of one partition is a register: commits write it,
// OffsetFetch reads it. Members commit concurrently (an old owner's commit
// from OnPartitionsRevoked can overlap the new owner's), and a commit that
// failed in transit (a reset connection, a timeout, NOT_COORDINATOR after
// the write) may still have taken effect. So "a read is never lower than
// the read before" is not a property of a correct broker: the soak of seed
// 545667 read 2758 after 2787 because two members committed 2758 and 2793
// at overlapping times and 2758's write was applied last, which Kafka may
// do as well. What a correct broker guarantees is that the reads are
// explained by some order of the writes that respects real time
// (linearizability). checkGroupOffsets applies two necessary conditions of
// that, so it never blames a correct broker, and still catches the stale
// and dirty reads of bugs 2 and 7 in docs/reliability.md:
//
//   - stale read: a read returned v, but for every write of v there is an
//     acknowledged write of another value that started after that write
//     returned and returned before the read started;
//   - back in time: two reads, the second started after the first returned,
//     saw a then b != a, and no write of b can fall between them (every
//     write of b returned before the first read started, or started after
//     the second returned).
//
// A write whose outcome is unknown has no return time (it may take effect
// at any later time); a read of a value nobody wrote is a violation too.

// groupWrite is one commit of one partition's offset.
type groupWrite struct {
	offset    int64
	call, ret time.Duration // ret: math.MaxInt64 when the outcome is unknown
	acked     bool
}

// groupRead is one OffsetFetch answer for one partition.
type groupRead struct {
	offset    int64
	call, ret time.Duration
}

const unknownReturn = time.Duration(math.MaxInt64)

// checkGroupOffsets returns a description of every read of partition
// (named topic[part]) that no linearization of writes explains.
func checkGroupOffsets(topic string, part int32, writes []groupWrite, reads []groupRead) []string {
	var out []string
	byValue := map[int64][]groupWrite{}
	for _, w := range writes {
		byValue[w.offset] = append(byValue[w.offset], w)
	}
	// Acknowledged writes in return order, with, at each prefix, the two
	// latest starts of different values (the latest-starting write may be
	// of the value the read returned, which does not count against it).
	acked := make([]groupWrite, 0, len(writes))
	for _, w := range writes {
		if w.acked {
			acked = append(acked, w)
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].ret < acked[j].ret })
	type top2 struct {
		first, second groupWrite // latest call; latest call of another value
		n             int
	}
	prefix := make([]top2, len(acked)+1)
	for i, w := range acked {
		t := prefix[i]
		switch {
		case t.n == 0 || w.call > t.first.call:
			if t.n > 0 && t.first.offset != w.offset {
				t.second = t.first
				t.n = 2
			} else if t.n == 0 {
				t.n = 1
			}
			t.first = w
		case w.offset != t.first.offset && (t.n < 2 || w.call > t.second.call):
			t.second, t.n = w, 2
		}
		prefix[i+1] = t
	}
	sortedReads := append([]groupRead(nil), reads...)
	sort.Slice(sortedReads, func(i, j int) bool { return sortedReads[i].call < sortedReads[j].call })

	for _, r := range sortedReads {
		var latestRet time.Duration = -1 // the latest return of a write of r's value that began before r ended
		for _, w := range byValue[r.offset] {
			if w.call < r.ret && w.ret > latestRet {
				latestRet = w.ret
			}
		}
		if latestRet < 0 {
			out = append(out, fmt.Sprintf("%s[%d]: committed offset read as %d at %.3fs, which no commit sent before it wrote",
				topic, part, r.offset, r.call.Seconds()))
			continue
		}
		// Acknowledged writes that returned before r began.
		n := sort.Search(len(acked), func(i int) bool { return acked[i].ret >= r.call })
		t := prefix[n]
		var other *groupWrite
		switch {
		case t.n >= 1 && t.first.offset != r.offset:
			other = &t.first
		case t.n == 2:
			other = &t.second
		}
		if other != nil && other.call > latestRet {
			out = append(out, fmt.Sprintf("%s[%d]: committed offset read as %d at %.3fs, after the commit of %d [%.3fs-%.3fs] that began once every commit of %d had been answered",
				topic, part, r.offset, r.call.Seconds(), other.offset, other.call.Seconds(), other.ret.Seconds(), r.offset))
		}
	}

	// Back in time, between reads in real-time order.
	for i := 1; i < len(sortedReads); i++ {
		b := sortedReads[i]
		// The read before b that returned latest among those that returned
		// before b began (reads are sequential: one poller).
		var a *groupRead
		for j := i - 1; j >= 0; j-- {
			if sortedReads[j].ret < b.call {
				a = &sortedReads[j]
				break
			}
		}
		if a == nil || a.offset == b.offset {
			continue
		}
		possible := false
		for _, w := range byValue[b.offset] {
			if w.ret > a.call && w.call < b.ret {
				possible = true
				break
			}
		}
		if !possible {
			out = append(out, fmt.Sprintf("%s[%d]: committed offset read as %d at %.3fs after %d at %.3fs, and no commit of %d could fall between the two reads",
				topic, part, b.offset, b.call.Seconds(), a.offset, a.call.Seconds(), b.offset))
		}
	}
	return out
}
