package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
)

// saramaClusterProducer is sarama's idempotent SyncProducer (acks=all, one
// request in flight, as sarama requires for idempotence), retrying through
// the failover with a metadata refresh after each failure.
func saramaClusterProducer(topic string) (chunkProducer, func(), error) {
	c := sarama.NewConfig()
	c.ClientID = "gregor-interop-sarama-cluster"
	c.Version = sarama.V3_6_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 100
	c.Producer.Retry.Backoff = 250 * time.Millisecond
	c.Metadata.Retry.Max = 100
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	p, err := sarama.NewSyncProducer(strings.Split(bootstrap, ","), c)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, from, to int) (map[string]ackedAt, error) {
		msgs := make([]*sarama.ProducerMessage, 0, to-from)
		for j := from; j < to; j++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic,
				Key: sarama.StringEncoder(fmt.Sprintf("k%d", j)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", j))})
		}
		if err := p.SendMessages(msgs); err != nil {
			return nil, err
		}
		acked := map[string]ackedAt{}
		for _, m := range msgs {
			acked[string(m.Value.(sarama.StringEncoder))] = ackedAt{int64(m.Partition), m.Offset}
		}
		return acked, nil
	}, func() { p.Close() }, nil
}

// kafkaGoClusterProducer is kafka-go's Writer: acks=all, retries (kafka-go
// has no idempotent producer), metadata refreshed every second; Completion
// reports each message's partition and offset.
func kafkaGoClusterProducer(topic string) (chunkProducer, func(), error) {
	var mu sync.Mutex
	acked := map[string]ackedAt{}
	w := &kafka.Writer{
		Addr:            kafka.TCP(strings.Split(bootstrap, ",")...),
		Topic:           topic,
		Balancer:        &kafka.Hash{},
		RequiredAcks:    kafka.RequireAll,
		MaxAttempts:     60,
		WriteBackoffMin: 100 * time.Millisecond,
		WriteBackoffMax: time.Second,
		BatchTimeout:    5 * time.Millisecond,
		Transport:       &kafka.Transport{MetadataTTL: time.Second, ClientID: "gregor-interop-kafkago-cluster"},
		Completion: func(messages []kafka.Message, err error) {
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range messages {
				acked[string(m.Value)] = ackedAt{int64(m.Partition), m.Offset}
			}
		},
	}
	return func(ctx context.Context, from, to int) (map[string]ackedAt, error) {
		msgs := make([]kafka.Message, 0, to-from)
		for j := from; j < to; j++ {
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("v%d", j))})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		out := map[string]ackedAt{}
		for _, m := range msgs {
			at, ok := acked[string(m.Value)]
			if !ok {
				return nil, fmt.Errorf("%s: written without a completion", m.Value)
			}
			out[string(m.Value)] = at
		}
		return out, nil
	}, func() { w.Close() }, nil
}
