package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/record"
)

// txnRawBatch builds a transactional batch (no coordinator involved: the
// partition side only sees the transactional attribute).
func txnRawBatch(t *testing.T, pid int64, epoch int16, seq int32, count int, tag string) []byte {
	t.Helper()
	var recs []record.Record
	for i := range count {
		recs = append(recs, record.Record{Key: []byte(tag), Value: []byte(fmt.Sprintf("%s-%d", tag, i))})
	}
	b, err := record.AppendBatch(nil, record.Batch{
		BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq,
		PartitionLeaderEpoch: -1, Transactional: true, Records: recs,
	})
	if err != nil {
		t.Fatalf("build batch: %v", err)
	}
	return b
}

// fetchIsolated is a raw sessionless fetch of partition 0 at offset.
func fetchIsolated(t *testing.T, cl *kgo.Client, topic string, offset int64, isolation int8) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	req.IsolationLevel = isolation
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = offset
	fp.PartitionMaxBytes = 1 << 20
	fp.CurrentLeaderEpoch = -1
	fp.LogStartOffset = -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp := rawRequest[*kmsg.FetchResponse](t, cl, req)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch: malformed response (error %d)", resp.ErrorCode)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p
}

// latestOffset is ListOffsets -1 for partition 0 at the isolation level.
func latestOffset(t *testing.T, cl *kgo.Client, topic string, isolation int8) int64 {
	t.Helper()
	off, code, err := listLatest(testCtx(t, 10*time.Second), cl, topic, isolation)
	if err != nil || code != 0 {
		t.Fatalf("ListOffsets: %v %v", err, kerr.ErrorForCode(code))
	}
	return off
}

func lastOffsetOf(t *testing.T, data []byte) int64 {
	t.Helper()
	last := int64(-1)
	sp := record.Split(data)
	for b, ok := sp.Next(); ok; b, ok = sp.Next() {
		h, err := record.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		last = h.LastOffset()
	}
	return last
}

// TestE2ETxnPartitionOpenTransaction checks that an open transaction (a
// transactional batch with no marker yet) pins the last stable offset:
// read_committed consumers stop before it, read_uncommitted ones do not, and
// the LSO survives a restart.
func TestE2ETxnPartitionOpenTransaction(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	adm, cl := newAdmin(t, n)
	const topic = "txnp"
	createTopic(t, adm, topic, 1, nil)

	if r := rawProduce(t, cl, topic, rawBatch(t, -1, -1, -1, 3, "before")); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("plain batch: %v base %d", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}
	pid, epoch := initProducerID(t, cl)
	if r := rawProduce(t, cl, topic, txnRawBatch(t, pid, epoch, 0, 2, "open")); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("transactional batch: %v base %d", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}
	if r := rawProduce(t, cl, topic, rawBatch(t, -1, -1, -1, 2, "after")); r.ErrorCode != 0 || r.BaseOffset != 5 {
		t.Fatalf("plain batch after: %v base %d", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}

	t.Run("refused batches", func(t *testing.T) {
		cases := []struct {
			name  string
			batch []byte
		}{
			{"transactional without producer id", txnRawBatch(t, -1, -1, -1, 1, "nopid")},
			{"control batch from a client", func() []byte {
				b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
					ProducerEpoch: epoch, BaseSequence: -1, Transactional: true, Control: true,
					Records: []record.Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}()},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if r := rawProduce(t, cl, topic, c.batch); r.ErrorCode != kerr.InvalidRecord.Code {
					t.Fatalf("got %v, want INVALID_RECORD", kerr.ErrorForCode(r.ErrorCode))
				}
			})
		}
	})

	check := func(t *testing.T) {
		t.Helper()
		for _, c := range []struct {
			isolation   int8
			wantLatest  int64
			wantLastRec int64
		}{
			{isolation: 0, wantLatest: 7, wantLastRec: 6},
			{isolation: 1, wantLatest: 3, wantLastRec: 2},
		} {
			p := fetchIsolated(t, cl, topic, 0, c.isolation)
			if p.HighWatermark != 7 || p.LastStableOffset != 3 {
				t.Fatalf("isolation %d: HW %d LSO %d, want 7 3", c.isolation, p.HighWatermark, p.LastStableOffset)
			}
			if got := lastOffsetOf(t, p.RecordBatches); got != c.wantLastRec {
				t.Fatalf("isolation %d: last fetched offset %d, want %d", c.isolation, got, c.wantLastRec)
			}
			if c.isolation == 1 && len(p.AbortedTransactions) != 0 {
				t.Fatalf("aborted transactions %v, want none", p.AbortedTransactions)
			}
			if got := latestOffset(t, cl, topic, c.isolation); got != c.wantLatest {
				t.Fatalf("isolation %d: ListOffsets latest %d, want %d", c.isolation, got, c.wantLatest)
			}
		}
		// Fetching at the LSO with read_committed returns nothing.
		if p := fetchIsolated(t, cl, topic, 3, 1); len(p.RecordBatches) != 0 {
			t.Fatalf("read_committed at the LSO returned %d bytes", len(p.RecordBatches))
		}
	}
	t.Run("raw fetch and list offsets", check)

	t.Run("kgo consumers", func(t *testing.T) {
		all := consumePartitions(t, n, topic, []int32{0}, 7)
		if string(all[3].Key) != "open" {
			t.Fatalf("read_uncommitted record 3 = %q, want the open transaction's", all[3].Key)
		}
		rc := newClient(t, n, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
		var got []*kgo.Record
		// Poll until the three committed records arrive, then a little longer
		// to see that nothing past the LSO follows.
		ctx := testCtx(t, 15*time.Second)
		var quiet context.Context
		for {
			pollCtx := ctx
			if quiet != nil {
				pollCtx = quiet
			}
			fs := rc.PollFetches(pollCtx)
			if pollCtx.Err() != nil {
				if quiet == nil {
					t.Fatalf("read_committed: got %d records before the deadline, want 3", len(got))
				}
				break
			}
			fs.EachError(func(tp string, p int32, err error) {
				if err != context.DeadlineExceeded {
					t.Fatalf("read_committed %s[%d]: %v", tp, p, err)
				}
			})
			got = append(got, fs.Records()...)
			if len(got) >= 3 && quiet == nil {
				quiet = testCtx(t, time.Second)
			}
		}
		if len(got) != 3 {
			t.Fatalf("read_committed consumed %d records, want 3", len(got))
		}
		for _, r := range got {
			if string(r.Key) != "before" {
				t.Fatalf("read_committed saw %q at %d", r.Key, r.Offset)
			}
		}
	})

	t.Run("restart keeps the LSO", func(t *testing.T) {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		n = startNode(t, dir, nil)
		cl = newClient(t, n)
		deadline := time.Now().Add(15 * time.Second)
		for {
			// The partition may take a moment to be hosted again.
			req := kmsg.NewPtrListOffsetsRequest()
			req.ReplicaID = -1
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp = -1
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{rp}
			req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
			resp := rawRequest[*kmsg.ListOffsetsResponse](t, cl, req)
			if len(resp.Topics) == 1 && len(resp.Topics[0].Partitions) == 1 && resp.Topics[0].Partitions[0].ErrorCode == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition not served after restart: %+v", resp)
			}
		}
		check(t)
	})
}
