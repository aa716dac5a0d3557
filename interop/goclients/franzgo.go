package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const franzClient = "franz-go"

// writeCounter is a kgo hook counting the requests written, by API key: under
// transactions v2 (KIP-890 part 2) a producer adds partitions implicitly with
// Produce v12+ and never sends AddPartitionsToTxn.
type writeCounter struct {
	mu    sync.Mutex
	byKey map[int16]int
}

func (w *writeCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byKey[key]++
}

func (w *writeCounter) count(key kmsg.Key) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byKey[int16(key)]
}

// franzGoChecks: a kgo transactional client negotiates transactions v2 (the
// broker finalizes transaction.version=2), commits one transaction, aborts
// one, commits another; a read_committed reader sees exactly the committed
// records and a read_uncommitted reader shows the epoch bumped at every end.
func franzGoChecks() {
	check(franzClient, "transactions v2", 30*time.Second, func(ctx context.Context) (string, error) {
		topic := "franz-tx-" + run
		hook := &writeCounter{byKey: map[int16]int{}}
		cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.TransactionalID("franz-txid-"+run),
			kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(hook))
		if err != nil {
			return "", err
		}
		defer cl.Close()

		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
		if err != nil {
			return "", fmt.Errorf("ApiVersions: %w", err)
		}
		var txVersion int16 = -1
		for _, f := range resp.FinalizedFeatures {
			if f.Name == "transaction.version" {
				txVersion = f.MaxVersionLevel
			}
		}
		var endTxnMax int16 = -1
		for _, k := range resp.ApiKeys {
			if k.ApiKey == int16(kmsg.EndTxn) {
				endTxnMax = k.MaxVersion
			}
		}
		if txVersion < 2 || endTxnMax < 5 {
			return "", fmt.Errorf("ApiVersions: finalized transaction.version %d, EndTxn max v%d; want >= 2 and >= v5", txVersion, endTxnMax)
		}

		type txn struct {
			values []string
			commit kgo.TransactionEndTry
		}
		txns := []txn{
			{[]string{"commit-0", "commit-1", "commit-2", "commit-3"}, kgo.TryCommit},
			{[]string{"abort-0", "abort-1", "abort-2"}, kgo.TryAbort},
			{[]string{"commit-4"}, kgo.TryCommit},
		}
		var committed, all []string
		for i, t := range txns {
			if err := cl.BeginTransaction(); err != nil {
				return "", fmt.Errorf("transaction %d: BeginTransaction: %w", i, err)
			}
			for _, v := range t.values {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
					return "", fmt.Errorf("transaction %d: ProduceSync: %w", i, err)
				}
				all = append(all, v)
				if t.commit == kgo.TryCommit {
					committed = append(committed, v)
				}
			}
			if err := cl.EndTransaction(ctx, t.commit); err != nil {
				return "", fmt.Errorf("transaction %d: EndTransaction(%v): %w", i, t.commit, err)
			}
		}
		if n := hook.count(kmsg.AddPartitionsToTxn); n != 0 {
			return "", fmt.Errorf("client sent AddPartitionsToTxn %d times: it did not use transactions v2", n)
		}
		if n := hook.count(kmsg.EndTxn); n != len(txns) {
			return "", fmt.Errorf("client sent EndTxn %d times, want %d", n, len(txns))
		}

		gotC, _, err := franzReadAll(ctx, topic, kgo.ReadCommitted(), len(committed))
		if err != nil {
			return "", fmt.Errorf("read_committed reader: %w", err)
		}
		if fmt.Sprint(gotC) != fmt.Sprint(committed) {
			return "", fmt.Errorf("read_committed reader read %v, want %v", gotC, committed)
		}
		gotU, epochs, err := franzReadAll(ctx, topic, kgo.ReadUncommitted(), len(all))
		if err != nil {
			return "", fmt.Errorf("read_uncommitted reader: %w", err)
		}
		if fmt.Sprint(gotU) != fmt.Sprint(all) {
			return "", fmt.Errorf("read_uncommitted reader read %v, want %v", gotU, all)
		}
		// Transactions v2 bump the producer epoch when each transaction
		// ends, so each transaction's records carry a higher epoch.
		first := 0
		for i, t := range txns {
			e := epochs[first]
			for _, x := range epochs[first : first+len(t.values)] {
				if x != e {
					return "", fmt.Errorf("transaction %d records have epochs %v", i, epochs[first:first+len(t.values)])
				}
			}
			if i > 0 && e <= epochs[first-1] {
				return "", fmt.Errorf("epoch not bumped between transactions: record epochs %v", epochs)
			}
			first += len(t.values)
		}
		return fmt.Sprintf("kgo transactional client on transactions v2 (finalized transaction.version=%d, EndTxn max v%d, no AddPartitionsToTxn sent, "+
			"epoch bumped at every end: %v): commit, abort, commit; read_committed reads exactly the %d committed records, read_uncommitted all %d",
			txVersion, endTxnMax, epochs, len(committed), len(all)), nil
	})
}

// franzReadAll reads partition 0 of topic from the start with the given
// isolation level until want records arrived and a further poll stays empty.
func franzReadAll(ctx context.Context, topic string, iso kgo.IsolationLevel, want int) ([]string, []int16, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.FetchIsolationLevel(iso),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	var vals []string
	var epochs []int16
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if len(vals) >= want {
			cancel()
			pctx, cancel = context.WithTimeout(ctx, 1500*time.Millisecond)
		}
		fs := cl.PollFetches(pctx)
		cancel()
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return vals, epochs, fe.Err
			}
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			vals = append(vals, string(r.Value))
			epochs = append(epochs, r.ProducerEpoch)
		})
		if n == 0 {
			if ctx.Err() != nil {
				return vals, epochs, ctx.Err()
			}
			return vals, epochs, nil
		}
	}
}
