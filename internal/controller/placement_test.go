package controller

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// placementImage is an image with the given brokers (id -> rack; a negative
// id is registered fenced) and topics already placed.
func placementImage(t *testing.T, racks map[int32]string, existing ...[][]int32) *metadata.Image {
	t.Helper()
	var recs []metadata.Record
	for _, id := range slices.Sorted(func(yield func(int32) bool) {
		for id := range racks {
			if !yield(id) {
				return
			}
		}
	}) {
		fenced := id < 0
		recs = append(recs, metadata.RegisterBrokerRecord{NodeID: max(id, -id), Host: "h", Port: 1, Rack: racks[id], Epoch: 1, Fenced: fenced})
	}
	for i, parts := range existing {
		id := [16]byte{byte(i + 1)}
		recs = append(recs, metadata.TopicRecord{Name: fmt.Sprintf("t%d", i), ID: id})
		recs = append(recs, partitionRecords(id, 0, parts)...)
	}
	img, err := (&metadata.Image{}).ApplyBatch(recs, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func counts(assignment [][]int32) (leaders, replicas map[int32]int) {
	leaders, replicas = map[int32]int{}, map[int32]int{}
	for _, rs := range assignment {
		leaders[rs[0]]++
		for _, r := range rs {
			replicas[r]++
		}
	}
	return leaders, replicas
}

func spread(m map[int32]int, ids []int32) int {
	lo, hi := -1, 0
	for _, id := range ids {
		if lo < 0 || m[id] < lo {
			lo = m[id]
		}
		hi = max(hi, m[id])
	}
	return hi - lo
}

// TestControllerPlacementRackAware: every partition's replicas are on as
// many distinct racks as its replication factor allows, and leaders and
// replicas are balanced to within one per broker.
func TestControllerPlacementRackAware(t *testing.T) {
	cases := []struct {
		name       string
		racks      map[int32]string
		partitions int
		rf         int
		wantRacks  int
	}{
		{"three racks of two, rf 3", map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}, 12, 3, 3},
		{"two racks, rf 3 uses both", map[int32]string{1: "a", 2: "a", 3: "b", 4: "b"}, 8, 3, 2},
		{"racks with ids interleaved", map[int32]string{1: "x", 2: "y", 3: "x", 4: "y"}, 8, 2, 2},
		{"no racks", map[int32]string{1: "", 2: "", 3: "", 4: ""}, 12, 3, 1},
		{"six brokers rf 1", map[int32]string{1: "a", 2: "b", 3: "c", 4: "a", 5: "b", 6: "c"}, 6, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := placementImage(t, tc.racks)
			got, err := newPlacement(img).place(tc.partitions, tc.rf)
			if err != nil {
				t.Fatal(err)
			}
			for p, rs := range got {
				racks := map[string]bool{}
				for i, r := range rs {
					if slices.Contains(rs[:i], r) {
						t.Fatalf("partition %d: duplicate replica in %v", p, rs)
					}
					racks[tc.racks[r]] = true
				}
				if len(rs) != tc.rf || len(racks) != tc.wantRacks {
					t.Fatalf("partition %d: replicas %v on %d racks, want %d replicas on %d racks", p, rs, len(racks), tc.rf, tc.wantRacks)
				}
			}
			ids := img.UnfencedBrokers()
			leaders, replicas := counts(got)
			if spread(leaders, ids) > 1 || spread(replicas, ids) > 1 {
				t.Fatalf("unbalanced: leaders %v replicas %v (%v)", leaders, replicas, got)
			}
		})
	}
}

// TestControllerPlacementBalancesExistingLoad: new partitions go to the
// brokers that lead and hold the fewest partitions already, never to a
// fenced broker, and a replication factor above the unfenced brokers is
// refused.
func TestControllerPlacementBalancesExistingLoad(t *testing.T) {
	// Broker 1 leads and holds six partitions; 2 and 3 hold one each.
	img := placementImage(t, map[int32]string{1: "", 2: "", 3: "", -4: ""},
		[][]int32{{1, 2}, {1}, {1}, {1, 3}, {1}, {1}})
	got, err := newPlacement(img).place(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	leaders, replicas := counts(got)
	if leaders[1] != 0 || leaders[2] != 2 || leaders[3] != 2 {
		t.Fatalf("new leaders %v (%v), want them on 2 and 3", leaders, got)
	}
	if replicas[4] != 0 || replicas[1] != 0 {
		t.Fatalf("new replicas %v (%v): none on the loaded broker 1 or the fenced 4", replicas, got)
	}
	if _, err := newPlacement(img).place(1, 4); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("rf 4 with 3 unfenced brokers: %v", err)
	}

	// Topic after topic of one partition: leadership rotates over all
	// brokers instead of piling onto the lowest id.
	img = placementImage(t, map[int32]string{1: "", 2: "", 3: ""})
	total := map[int32]int{}
	for range 6 {
		got, err := newPlacement(img).place(1, 1)
		if err != nil {
			t.Fatal(err)
		}
		total[got[0][0]]++
		id := [16]byte{byte(len(img.Topics) + 1)}
		img, err = img.ApplyBatch(append([]metadata.Record{metadata.TopicRecord{Name: fmt.Sprint(len(img.Topics)), ID: id}},
			partitionRecords(id, 0, got)...), img.LastOffset+1)
		if err != nil {
			t.Fatal(err)
		}
	}
	if total[1] != 2 || total[2] != 2 || total[3] != 2 {
		t.Fatalf("six single-partition topics lead on %v", total)
	}
}
