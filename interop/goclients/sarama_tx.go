package main

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// saramaTxChecks: a transactional AsyncProducer commits a transaction that
// also commits a group offset (AddOffsetsToTxn), aborts one, and commits a
// consume-transform-produce round (AddMessageToTxn); a ReadCommitted
// partition consumer must see exactly the committed records.
func saramaTxChecks() {
	check(saramaClient, "transactions", 30*time.Second, func(ctx context.Context) (string, error) {
		if !groups {
			return "", skipErr("transactional producer: broker does not advertise the group APIs yet")
		}
		src, dst, group := "sarama-txsrc-"+run, "sarama-tx-"+run, "sarama-txgroup-"+run
		const nCommit, nAbort, nSrc = 5, 3, 4

		sp, err := sarama.NewSyncProducer([]string{bootstrap}, saramaConfig())
		if err != nil {
			return "", err
		}
		for i := range nSrc {
			if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: src, Value: sarama.StringEncoder(fmt.Sprintf("src-%d", i))}); err != nil {
				sp.Close()
				return "", fmt.Errorf("source SendMessage: %w", err)
			}
		}
		sp.Close()

		cfg := saramaConfig()
		cfg.Producer.Idempotent = true
		cfg.Producer.Transaction.ID = "sarama-txid-" + run
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
		p, err := sarama.NewAsyncProducer([]string{bootstrap}, cfg)
		if err != nil {
			return "", fmt.Errorf("NewAsyncProducer: %w", err)
		}
		defer p.Close()
		// send waits for every record's acknowledgement so that aborted
		// records are in the log before the abort, not only in the client.
		send := func(values ...string) error {
			for _, v := range values {
				p.Input() <- &sarama.ProducerMessage{Topic: dst, Value: sarama.StringEncoder(v)}
			}
			for range values {
				select {
				case <-p.Successes():
				case e := <-p.Errors():
					return fmt.Errorf("produce: %w", e.Err)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}

		var committed, all []string
		if err := p.BeginTxn(); err != nil {
			return "", fmt.Errorf("BeginTxn: %w", err)
		}
		for i := range nCommit {
			v := fmt.Sprintf("commit-%d", i)
			committed, all = append(committed, v), append(all, v)
			if err := send(v); err != nil {
				return "", err
			}
		}
		if err := p.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{src: {{Partition: 0, Offset: 1}}}, group); err != nil {
			return "", fmt.Errorf("AddOffsetsToTxn: %w", err)
		}
		if err := p.CommitTxn(); err != nil {
			return "", fmt.Errorf("CommitTxn: %w", err)
		}
		if off, err := saramaGroupOffset(group, src); err != nil || off != 1 {
			return "", fmt.Errorf("group offset after AddOffsetsToTxn+CommitTxn: %d, %v; want 1", off, err)
		}

		if err := p.BeginTxn(); err != nil {
			return "", fmt.Errorf("second BeginTxn: %w", err)
		}
		for i := range nAbort {
			v := fmt.Sprintf("abort-%d", i)
			all = append(all, v)
			if err := send(v); err != nil {
				return "", err
			}
		}
		if err := p.AbortTxn(); err != nil {
			return "", fmt.Errorf("AbortTxn: %w", err)
		}

		// Consume-transform-produce from offset 1 (the committed group offset).
		c, err := sarama.NewConsumer([]string{bootstrap}, saramaConfig())
		if err != nil {
			return "", err
		}
		defer c.Close()
		pc, err := c.ConsumePartition(src, 0, 1)
		if err != nil {
			return "", fmt.Errorf("ConsumePartition %s: %w", src, err)
		}
		defer pc.Close()
		if err := p.BeginTxn(); err != nil {
			return "", fmt.Errorf("third BeginTxn: %w", err)
		}
		for i := 1; i < nSrc; i++ {
			select {
			case m := <-pc.Messages():
				v := "ctp-" + string(m.Value)
				committed, all = append(committed, v), append(all, v)
				if err := send(v); err != nil {
					return "", err
				}
				if err := p.AddMessageToTxn(m, group, nil); err != nil {
					return "", fmt.Errorf("AddMessageToTxn: %w", err)
				}
			case e := <-pc.Errors():
				return "", fmt.Errorf("source consumer: %w", e.Err)
			case <-ctx.Done():
				return "", fmt.Errorf("source consumer: %w", ctx.Err())
			}
		}
		if err := p.CommitTxn(); err != nil {
			return "", fmt.Errorf("third CommitTxn: %w", err)
		}
		if off, err := saramaGroupOffset(group, src); err != nil || off != nSrc {
			return "", fmt.Errorf("group offset after AddMessageToTxn+CommitTxn: %d, %v; want %d", off, err, nSrc)
		}

		rc := saramaConfig()
		rc.Consumer.IsolationLevel = sarama.ReadCommitted
		gotC, err := saramaReadAll(ctx, rc, dst, len(committed))
		if err != nil {
			return "", fmt.Errorf("ReadCommitted consumer: %w", err)
		}
		if fmt.Sprint(gotC) != fmt.Sprint(committed) {
			return "", fmt.Errorf("ReadCommitted consumer read %v, want %v", gotC, committed)
		}
		gotU, err := saramaReadAll(ctx, saramaConfig(), dst, len(all))
		if err != nil {
			return "", fmt.Errorf("ReadUncommitted consumer: %w", err)
		}
		if fmt.Sprint(gotU) != fmt.Sprint(all) {
			return "", fmt.Errorf("ReadUncommitted consumer read %v, want %v", gotU, all)
		}
		return fmt.Sprintf("transactional producer (Transaction.ID, Idempotent): BeginTxn/CommitTxn with AddOffsetsToTxn, AbortTxn, "+
			"consume-transform-produce with AddMessageToTxn; IsolationLevel ReadCommitted reads exactly the %d committed records, "+
			"ReadUncommitted all %d; group offsets 1 then %d", len(committed), len(all), nSrc), nil
	})
}

func saramaGroupOffset(group, topic string) (int64, error) {
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
	if err != nil {
		return -1, err
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
	if err != nil {
		return -1, err
	}
	b := resp.GetBlock(topic, 0)
	if b == nil {
		return -1, fmt.Errorf("no offset block")
	}
	return b.Offset, nil
}

// saramaReadAll reads partition 0 of topic from the start: want values, then
// one more wait in which nothing else may arrive.
func saramaReadAll(ctx context.Context, cfg *sarama.Config, topic string, want int) ([]string, error) {
	c, err := sarama.NewConsumer([]string{bootstrap}, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	var got []string
	for {
		wait := time.After(5 * time.Second)
		if len(got) >= want {
			wait = time.After(1500 * time.Millisecond)
		}
		select {
		case m := <-pc.Messages():
			got = append(got, string(m.Value))
		case e := <-pc.Errors():
			return got, e.Err
		case <-ctx.Done():
			return got, ctx.Err()
		case <-wait:
			return got, nil
		}
	}
}
