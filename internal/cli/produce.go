package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxLineBytes bounds one input line (one record) read from stdin.
const maxLineBytes = 10 << 20

func (a *app) produceCmd() *cobra.Command {
	var (
		keySep      string
		headers     []string
		acks        string
		compression string
		partition   int32
		linger      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin",
		Long: `Produce one record per line of standard input (a trailing \r\n or \n is
removed; lines may be up to 10 MiB). Without --key-separator the line is the
value and the key is null; with it, the line is split at the first separator
into key and value, and a line without the separator is an error.

Records are partitioned like Kafka's Java client: murmur2 of the key for keyed
records, sticky batches for keyless ones; --partition sends all to one.
gregor waits until every record is acknowledged, prints "produced N records
to TOPIC" on stderr, and exits non-zero naming the Kafka error on failure.`,
		Example: `  echo hello | gregor produce events
  printf 'user1:clicked\nuser2:bought\n' | gregor produce events --key-separator : -H source=web
  gregor produce events --acks 1 --compression zstd --linger 5ms < records.txt`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			hdrs, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			opts := []kgo.Opt{
				kgo.DefaultProduceTopic(topic),
				kgo.RecordDeliveryTimeout(a.timeout),
				kgo.ProducerLinger(linger),
				// Like kafka-console-producer: a topic that does not exist is
				// created by the broker when auto.create.topics.enable is on.
				kgo.AllowAutoTopicCreation(),
			}
			switch acks {
			case "all", "-1":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
			default:
				return usageErrorf("--acks %q: want all, 1 or 0", acks)
			}
			codec, err := parseCompression(compression)
			if err != nil {
				return err
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
			if partition >= 0 {
				opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			} else if partition != -1 {
				return usageErrorf("--partition %d: must be >= 0", partition)
			}
			cl, err := a.newClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			n, err := a.produceLines(cmd.Context(), cl, topic, keySep, hdrs, partition)
			if err != nil {
				fmt.Fprintf(a.stderr, "produced %d records to %s before the failure\n", n, topic)
				return failed("produce to "+topic, err)
			}
			fmt.Fprintf(a.stderr, "produced %d records to %s\n", n, topic)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keySep, "key-separator", "", "split each line into key and value at the first occurrence of this string")
	fl.StringArrayVarP(&headers, "header", "H", nil, "record header key=value added to every record (repeatable)")
	fl.StringVar(&acks, "acks", "all", "acknowledgements to wait for: all, 1 or 0 (1 and 0 disable idempotence)")
	fl.StringVar(&compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fl.Int32Var(&partition, "partition", -1, "send every record to this partition (-1: key hash / sticky)")
	fl.DurationVar(&linger, "linger", 0, "how long a partition's batch waits for more records before sending")
	return cmd
}

// produceLines produces every stdin line and waits for all acknowledgements.
// It returns the number of records acknowledged and the first failure (a
// record error, an input error, or ctx's error).
func (a *app) produceLines(ctx context.Context, cl *kgo.Client, topic, keySep string, hdrs []kgo.RecordHeader, partition int32) (int64, error) {
	var (
		mu       sync.Mutex
		acked    int64
		firstErr error
	)
	failedSoFar := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		acked++
	}

	sc := bufio.NewScanner(a.stdin)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var inputErr error
	lineNo := 0
	for sc.Scan() {
		lineNo++
		if failedSoFar() != nil || ctx.Err() != nil {
			break
		}
		line := sc.Text() // a copy: the scanner reuses its buffer
		r := &kgo.Record{Topic: topic, Headers: hdrs}
		if keySep != "" {
			k, v, ok := strings.Cut(line, keySep)
			if !ok {
				inputErr = fmt.Errorf("stdin line %d: no key separator %q", lineNo, keySep)
				break
			}
			r.Key, r.Value = []byte(k), []byte(v)
		} else {
			r.Value = []byte(line)
		}
		if partition >= 0 {
			r.Partition = partition
		}
		cl.Produce(ctx, r, promise)
	}
	if inputErr == nil {
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = fmt.Errorf("stdin line %d is longer than %d bytes", lineNo+1, maxLineBytes)
			}
			inputErr = err
		}
	}
	// Flush waits for every buffered record's promise. The records carry
	// ctx; a cancelled ctx fails them, so Flush cannot outlive it for long.
	flushErr := cl.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case firstErr != nil:
		return acked, firstErr
	case inputErr != nil:
		return acked, inputErr
	case flushErr != nil:
		return acked, flushErr
	}
	return acked, nil
}

func parseHeaders(hs []string) ([]kgo.RecordHeader, error) {
	var out []kgo.RecordHeader
	for _, h := range hs {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, usageErrorf("-H %q: want key=value", h)
		}
		out = append(out, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return out, nil
}

func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, usageErrorf("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
}
