package node_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// listOffsetsV0 sends a ListOffsets v0 request (the legacy form Burrow 1.2
// still sends) for one partition.
func listOffsetsV0(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64, maxNum int32) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rp.MaxNumOffsets = maxNum
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.ListOffsetsResponse](t, cl, req)
	if resp.Version != 0 {
		t.Fatalf("ListOffsets went out as v%d, want v0", resp.Version)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListOffsets v0: malformed response %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// segmentBases lists the base offsets of the partition's .log files on disk,
// descending.
func segmentBases(t *testing.T, dir string) []int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			base, err := strconv.ParseInt(name, 10, 64)
			if err != nil {
				t.Fatalf("segment name %q: %v", e.Name(), err)
			}
			out = append(out, base)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

// TestE2EListOffsetsV0 checks the legacy ListOffsets v0 answer against Kafka
// 3.x's legacyFetchOffsetsBefore: old_style_offsets from segment bases and the
// log end, descending, at most max_num_offsets of them.
func TestE2EListOffsetsV0(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	adm, _ := newAdmin(t, n)
	const topic = "legacy"
	// A tiny segment.bytes rolls a segment for every batch.
	createTopic(t, adm, topic, 1, map[string]*string{"segment.bytes": strp("100")})
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	// The first batch holds three records, so a log start of 1 falls inside
	// the first segment; then one record per batch and segment.
	const records = 7
	for i := 0; i < records; {
		batch := []*kgo.Record{{Value: []byte(strings.Repeat("v", 120) + strconv.Itoa(i))}}
		if i == 0 {
			batch = append(batch, &kgo.Record{Value: []byte("1")}, &kgo.Record{Value: []byte("2")})
		}
		if err := p.ProduceSync(testCtx(t, 10*time.Second), batch...).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		i += len(batch)
	}
	bases := segmentBases(t, filepath.Join(dir, topic+"-0"))
	if len(bases) < 3 || bases[len(bases)-1] != 0 || bases[len(bases)-2] != 3 {
		t.Fatalf("want segments at 0, 3, 4, ..., have bases %v", bases)
	}

	versions := kversion.Stable()
	versions.SetMaxKeyVersion(2, 0)
	cl := newClient(t, n, kgo.MaxVersions(versions))

	// ApiVersions advertises v0 now.
	av := rawRequest[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest())
	for _, k := range av.ApiKeys {
		if k.ApiKey == 2 && k.MinVersion != 0 {
			t.Fatalf("ApiVersions: ListOffsets min version %d, want 0", k.MinVersion)
		}
	}

	// The active segment holds a batch, so latest adds the log end.
	all := append([]int64{records}, bases...)
	future := time.Now().Add(time.Hour).UnixMilli()
	for _, tc := range []struct {
		name   string
		ts     int64
		maxNum int32
		want   []int64
	}{
		{"latest one", -1, 1, []int64{records}},
		{"latest all", -1, 100, all},
		{"latest three", -1, 3, all[:3]},
		{"earliest", -2, 1, []int64{0}},
		{"earliest many", -2, 10, []int64{0}},
		{"time after every segment", future, 100, all},
		{"time before every segment", 1, 100, []int64{}},
		{"max timestamp is not a v0 query", -3, 100, []int64{}},
		{"no offsets asked", -1, 0, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := listOffsetsV0(t, cl, topic, 0, tc.ts, tc.maxNum)
			if rp.ErrorCode != 0 {
				t.Fatalf("error %v", kerr.ErrorForCode(rp.ErrorCode))
			}
			if !slices.Equal(rp.OldStyleOffsets, tc.want) && !(len(rp.OldStyleOffsets) == 0 && len(tc.want) == 0) {
				t.Fatalf("old_style_offsets %v, want %v", rp.OldStyleOffsets, tc.want)
			}
		})
	}

	t.Run("negative max_num_offsets", func(t *testing.T) {
		// Kafka fails building a negative-sized array: UNKNOWN_SERVER_ERROR.
		rp := listOffsetsV0(t, cl, topic, 0, -1, -1)
		if rp.ErrorCode != kerr.UnknownServerError.Code {
			t.Fatalf("error %v, want UNKNOWN_SERVER_ERROR", kerr.ErrorForCode(rp.ErrorCode))
		}
	})
	t.Run("unknown partition", func(t *testing.T) {
		rp := listOffsetsV0(t, cl, topic, 7, -1, 1)
		if rp.ErrorCode != kerr.UnknownTopicOrPartition.Code || len(rp.OldStyleOffsets) != 0 {
			t.Fatalf("error %v offsets %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(rp.ErrorCode), rp.OldStyleOffsets)
		}
	})
	t.Run("log start inside a segment", func(t *testing.T) {
		// Each segment stands for max(base, log start): the first segment
		// left after DeleteRecords answers the new log start.
		const start = 1
		del := kmsg.NewPtrDeleteRecordsRequest()
		dt := kmsg.NewDeleteRecordsRequestTopic()
		dt.Topic = topic
		dp := kmsg.NewDeleteRecordsRequestTopicPartition()
		dp.Offset = start
		dt.Partitions = append(dt.Partitions, dp)
		del.Topics = append(del.Topics, dt)
		del.TimeoutMillis = 5000
		dr := rawRequest[*kmsg.DeleteRecordsResponse](t, cl, del)
		if code := dr.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("DeleteRecords: %v", kerr.ErrorForCode(code))
		}
		if rp := listOffsetsV0(t, cl, topic, 0, -2, 1); !slices.Equal(rp.OldStyleOffsets, []int64{start}) {
			t.Fatalf("earliest %v (error %d), want [%d]", rp.OldStyleOffsets, rp.ErrorCode, start)
		}
		want := append(all[:len(all)-1:len(all)-1], start)
		if rp := listOffsetsV0(t, cl, topic, 0, -1, 100); !slices.Equal(rp.OldStyleOffsets, want) {
			t.Fatalf("latest all %v (error %d), want %v", rp.OldStyleOffsets, rp.ErrorCode, want)
		}
	})
}
