package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

const saramaClient = "sarama"

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "gregor-interop-sarama"
	c.Version = sarama.V3_6_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Consumer.Return.Errors = true
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	return c
}

func saramaChecks() {
	topic := "sarama-" + run
	const nSync, nAsync = 100, 400

	check(saramaClient, "ClusterAdmin", 30*time.Second, func(ctx context.Context) (string, error) {
		admin, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
		if err != nil {
			return "", err
		}
		defer admin.Close()
		retention := "7200000"
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
			ConfigEntries: map[string]*string{"retention.ms": &retention}}, false); err != nil {
			return "", fmt.Errorf("CreateTopic: %w", err)
		}
		err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false)
		if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return "", fmt.Errorf("second CreateTopic: %v, want ErrTopicAlreadyExists", err)
		}
		md, err := admin.DescribeTopics([]string{topic})
		if err != nil {
			return "", fmt.Errorf("DescribeTopics: %w", err)
		}
		if len(md) != 1 || md[0].Err != sarama.ErrNoError || len(md[0].Partitions) != 2 {
			return "", fmt.Errorf("DescribeTopics: %+v", md)
		}
		for _, p := range md[0].Partitions {
			if p.Leader != 1 || len(p.Isr) != 1 || p.Isr[0] != 1 {
				return "", fmt.Errorf("partition %d leader %d isr %v", p.ID, p.Leader, p.Isr)
			}
		}
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			return "", fmt.Errorf("DescribeConfig: %w", err)
		}
		found := false
		for _, e := range entries {
			if e.Name == "retention.ms" {
				found = e.Value == retention
			}
		}
		if !found {
			return "", fmt.Errorf("DescribeConfig: retention.ms not %s in %d entries", retention, len(entries))
		}
		topics, err := admin.ListTopics()
		if err != nil {
			return "", fmt.Errorf("ListTopics: %w", err)
		}
		if d, ok := topics[topic]; !ok || d.NumPartitions != 2 {
			return "", fmt.Errorf("ListTopics: %+v", d)
		}
		return "ClusterAdmin CreateTopic (2 partitions + config; duplicate -> ErrTopicAlreadyExists), DescribeTopics, DescribeConfig, ListTopics", nil
	})

	check(saramaClient, "SyncProducer", 30*time.Second, func(ctx context.Context) (string, error) {
		p, err := sarama.NewSyncProducer([]string{bootstrap}, saramaConfig())
		if err != nil {
			return "", err
		}
		defer p.Close()
		for i := range nSync {
			part, off, err := p.SendMessage(saramaMsg(topic, i))
			if err != nil {
				return "", fmt.Errorf("SendMessage %d: %w", i, err)
			}
			if part != 0 || off != int64(i) {
				return "", fmt.Errorf("SendMessage %d: partition %d offset %d", i, part, off)
			}
		}
		return fmt.Sprintf("SyncProducer (acks=all) sent %d keyed records with headers, offsets 0..%d", nSync, nSync-1), nil
	})

	check(saramaClient, "AsyncProducer", 30*time.Second, func(ctx context.Context) (string, error) {
		cfg := saramaConfig()
		cfg.Producer.Compression = sarama.CompressionSnappy
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Flush.Messages = 50
		// Without a frequency, sarama holds a final batch of fewer than 50
		// messages forever (it flushes whatever accumulated, often more than
		// 50, while a request is in flight, leaving a short tail).
		cfg.Producer.Flush.Frequency = 10 * time.Millisecond
		p, err := sarama.NewAsyncProducer([]string{bootstrap}, cfg)
		if err != nil {
			return "", err
		}
		defer p.Close()
		go func() {
			for i := nSync; i < nSync+nAsync; i++ {
				p.Input() <- saramaMsg(topic, i)
			}
		}()
		seen := make(map[int64]bool)
		for len(seen) < nAsync {
			select {
			case m := <-p.Successes():
				if seen[m.Offset] {
					return "", fmt.Errorf("offset %d acknowledged twice", m.Offset)
				}
				seen[m.Offset] = true
			case e := <-p.Errors():
				return "", fmt.Errorf("produce error: %w", e.Err)
			case <-ctx.Done():
				return "", fmt.Errorf("%d of %d acknowledged", len(seen), nAsync)
			}
		}
		for i := int64(nSync); i < nSync+nAsync; i++ {
			if !seen[i] {
				return "", fmt.Errorf("offset %d never acknowledged", i)
			}
		}
		return fmt.Sprintf("idempotent AsyncProducer with snappy acknowledged %d records at offsets %d..%d exactly once", nAsync, nSync, nSync+nAsync-1), nil
	})

	check(saramaClient, "partition consumer", 30*time.Second, func(ctx context.Context) (string, error) {
		c, err := sarama.NewConsumer([]string{bootstrap}, saramaConfig())
		if err != nil {
			return "", err
		}
		defer c.Close()
		pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
		if err != nil {
			return "", fmt.Errorf("ConsumePartition: %w", err)
		}
		defer pc.Close()
		for i := range nSync + nAsync {
			select {
			case m := <-pc.Messages():
				want := saramaMsg(topic, i)
				wk, _ := want.Key.Encode()
				wv, _ := want.Value.Encode()
				if m.Offset != int64(i) || string(m.Key) != string(wk) || string(m.Value) != string(wv) ||
					len(m.Headers) != 1 || string(m.Headers[0].Key) != "n" || string(m.Headers[0].Value) != fmt.Sprint(i) {
					return "", fmt.Errorf("record %d: offset %d key %q headers %d", i, m.Offset, m.Key, len(m.Headers))
				}
			case e := <-pc.Errors():
				return "", fmt.Errorf("after %d records: %w", i, e.Err)
			case <-ctx.Done():
				return "", fmt.Errorf("only %d of %d records", i, nSync+nAsync)
			}
		}
		// Wait for one more fetch at the log end: it must not error.
		select {
		case m := <-pc.Messages():
			return "", fmt.Errorf("unexpected extra record at offset %d", m.Offset)
		case e := <-pc.Errors():
			return "", fmt.Errorf("at log end: %w", e.Err)
		case <-time.After(1500 * time.Millisecond):
		}
		return fmt.Sprintf("partition consumer reads all %d records (plain + snappy) from OffsetOldest exactly, then idles at the log end", nSync+nAsync), nil
	})

	check(saramaClient, "consumer group", 60*time.Second, func(ctx context.Context) (string, error) {
		if !groups {
			return "", skipErr("consumer group: broker does not advertise the group APIs yet")
		}
		cfg := saramaConfig()
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Offsets.AutoCommit.Enable = false
		group := "sarama-group-" + run
		cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
		if err != nil {
			return "", err
		}
		h := &groupHandler{want: nSync + nAsync, done: make(chan struct{})}
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			for cctx.Err() == nil {
				if err := cg.Consume(cctx, []string{topic}, h); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		select {
		case <-h.done:
		case err := <-errc:
			cancel()
			cg.Close()
			return "", fmt.Errorf("Consume: %v after %d records", err, h.n)
		case <-ctx.Done():
			cancel()
			cg.Close()
			return "", fmt.Errorf("group read %d of %d records", h.n, nSync+nAsync)
		}
		cancel()
		<-errc
		if err := cg.Close(); err != nil {
			return "", fmt.Errorf("Close: %w", err)
		}
		admin, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
		if err != nil {
			return "", err
		}
		defer admin.Close()
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
		if err != nil {
			return "", fmt.Errorf("ListConsumerGroupOffsets: %w", err)
		}
		b := resp.GetBlock(topic, 0)
		if b == nil || b.Offset != int64(nSync+nAsync) {
			return "", fmt.Errorf("committed offset %+v, want %d", b, nSync+nAsync)
		}
		return fmt.Sprintf("ConsumerGroup reads %d records, commits, and ListConsumerGroupOffsets returns %d", h.n, nSync+nAsync), nil
	})
}

func saramaMsg(topic string, i int) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     topic,
		Partition: 0,
		Key:       sarama.StringEncoder(fmt.Sprintf("k%d", i)),
		Value:     sarama.StringEncoder(fmt.Sprintf("value %d %0100d", i, i)),
		Headers:   []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(fmt.Sprint(i))}},
	}
}

type groupHandler struct {
	want, n int
	done    chan struct{}
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if c.Partition() != 0 {
			continue
		}
		h.n++
		s.MarkMessage(m, "")
		if h.n == h.want {
			s.Commit()
			close(h.done)
			return nil
		}
	}
	return nil
}
