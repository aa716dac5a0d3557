package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

const kafkaGoClient = "kafka-go"

func kafkaGoChecks() {
	topic := "kafkago-" + run
	const n = 300

	check(kafkaGoClient, "Conn CreateTopics", 30*time.Second, func(ctx context.Context) (string, error) {
		conn, err := kafka.DialContext(ctx, "tcp", bootstrap)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		ctrl, err := conn.Controller()
		if err != nil {
			return "", fmt.Errorf("Controller: %w", err)
		}
		cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
		if err != nil {
			return "", fmt.Errorf("dial controller %s:%d: %w", ctrl.Host, ctrl.Port, err)
		}
		defer cc.Close()
		if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}}); err != nil {
			return "", fmt.Errorf("CreateTopics: %w", err)
		}
		// kafka-go's Conn.CreateTopics deliberately treats TOPIC_ALREADY_EXISTS
		// as success; the raw code is checked through the Client API.
		resp, err := (&kafka.Client{Addr: kafka.TCP(bootstrap)}).CreateTopics(ctx, &kafka.CreateTopicsRequest{
			Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
		if err != nil {
			return "", fmt.Errorf("Client.CreateTopics: %w", err)
		}
		if !errors.Is(resp.Errors[topic], kafka.TopicAlreadyExists) {
			return "", fmt.Errorf("second CreateTopics: %v, want TopicAlreadyExists", resp.Errors[topic])
		}
		parts, err := conn.ReadPartitions(topic)
		if err != nil {
			return "", fmt.Errorf("ReadPartitions: %w", err)
		}
		if len(parts) != 2 || parts[0].Leader.ID != 1 {
			return "", fmt.Errorf("ReadPartitions: %+v", parts)
		}
		return fmt.Sprintf("Conn.Controller (node %d) + CreateTopics (2 partitions + config; duplicate -> TopicAlreadyExists) + ReadPartitions", ctrl.ID), nil
	})

	// The kafka-go README's first example: DialLeader on a topic that does
	// not exist yet (Metadata auto-creates it), then WriteMessages on that
	// connection, which has no retry: the leader Metadata named must serve
	// the partition at once.
	check(kafkaGoClient, "DialLeader+WriteMessages", 30*time.Second, func(ctx context.Context) (string, error) {
		fresh := "kafkago-leader-" + run
		conn, err := kafka.DialLeader(ctx, "tcp", bootstrap, fresh, 0)
		if err != nil {
			return "", fmt.Errorf("DialLeader on new topic %s: %w", fresh, err)
		}
		defer conn.Close()
		if err := conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return "", err
		}
		const count = 3
		msgs := make([]kafka.Message, count)
		for i := range msgs {
			msgs[i] = kafka.Message{Value: []byte("leader-" + strconv.Itoa(i))}
		}
		if _, err := conn.WriteMessages(msgs...); err != nil {
			return "", fmt.Errorf("WriteMessages right after DialLeader: %w", err)
		}
		first, last, err := conn.ReadOffsets()
		if err != nil {
			return "", fmt.Errorf("ReadOffsets: %w", err)
		}
		if first != 0 || last != count {
			return "", fmt.Errorf("offsets after %d writes: first %d last %d, want 0 and %d", count, first, last, count)
		}
		return fmt.Sprintf("DialLeader on a new (auto-created) topic, then WriteMessages of %d messages succeeds at once (offsets 0..%d)", count, count-1), nil
	})

	check(kafkaGoClient, "Writer", 30*time.Second, func(ctx context.Context) (string, error) {
		w := &kafka.Writer{
			Addr:         kafka.TCP(bootstrap),
			Topic:        topic,
			Balancer:     kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }),
			RequiredAcks: kafka.RequireAll,
			Compression:  compress.Lz4,
			BatchSize:    50,
			BatchTimeout: 5 * time.Millisecond,
		}
		defer w.Close()
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafkaGoMsg(i)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return "", fmt.Errorf("WriteMessages: %w", err)
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: "", Key: []byte("p1"), Value: []byte("x")}); err != nil {
			return "", fmt.Errorf("WriteMessages extra: %w", err)
		}
		st := w.Stats()
		if st.Errors != 0 {
			return "", fmt.Errorf("writer stats report %d errors", st.Errors)
		}
		return fmt.Sprintf("Writer (acks=all, lz4, batches of 50) wrote %d keyed records with headers", n+1), nil
	})

	check(kafkaGoClient, "Reader", 30*time.Second, func(ctx context.Context) (string, error) {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: 0,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond})
		defer r.Close()
		if err := r.SetOffset(kafka.FirstOffset); err != nil {
			return "", err
		}
		for i := range n + 1 {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return "", fmt.Errorf("ReadMessage %d: %w", i, err)
			}
			want := kafkaGoMsg(i)
			if i == n {
				want = kafka.Message{Key: []byte("p1"), Value: []byte("x")}
			}
			if m.Offset != int64(i) || string(m.Key) != string(want.Key) || string(m.Value) != string(want.Value) ||
				len(m.Headers) != len(want.Headers) || (len(want.Headers) == 1 && string(m.Headers[0].Value) != string(want.Headers[0].Value)) {
				return "", fmt.Errorf("record %d: offset %d key %q headers %v", i, m.Offset, m.Key, m.Headers)
			}
		}
		// A read at the log end must wait, not fail.
		wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		m, err := r.ReadMessage(wctx)
		if err == nil {
			return "", fmt.Errorf("unexpected extra record at offset %d", m.Offset)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("read at log end: %w", err)
		}
		lag, err := r.ReadLag(ctx)
		if err != nil || lag != 0 {
			return "", fmt.Errorf("ReadLag %d %v", lag, err)
		}
		return fmt.Sprintf("partition Reader (no group) reads all %d lz4 records exactly from FirstOffset, waits at the log end, lag 0", n+1), nil
	})

	check(kafkaGoClient, "group Reader", 60*time.Second, func(ctx context.Context) (string, error) {
		if !groups {
			return "", skipErr("consumer group Reader: broker does not advertise the group APIs yet")
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, GroupID: "kafkago-group-" + run,
			StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond,
			HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second})
		defer r.Close()
		for i := range n + 1 {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return "", fmt.Errorf("FetchMessage %d: %w", i, err)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				return "", fmt.Errorf("CommitMessages: %w", err)
			}
		}
		return fmt.Sprintf("group Reader fetches and commits all %d records", n+1), nil
	})
}

func kafkaGoMsg(i int) kafka.Message {
	return kafka.Message{
		Key:     []byte(fmt.Sprintf("k%d", i)),
		Value:   []byte(fmt.Sprintf("value %d %0100d", i, i)),
		Headers: []kafka.Header{{Key: "n", Value: []byte(strconv.Itoa(i))}},
	}
}
