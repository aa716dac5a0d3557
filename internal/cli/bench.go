package cli

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/bench"
)

// benchCmd is 'gregor bench': the load generator of internal/bench, in the
// manner of kafka-producer-perf-test and kafka-consumer-perf-test.
func (a *app) benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce, consume and end-to-end throughput and latency",
		Long: `Measure a cluster (gregor or Kafka) with franz-go clients.

  produce  producers only: records/s, MiB/s and ack latency
  consume  read the topic from its start (catch-up): records/s and MiB/s
  e2e      producers and a consumer: ack and end-to-end latency

With --rate, latency is measured from each record's intended send time
(start + i/rate), so broker stalls are not hidden (no coordinated omission).
The summary goes to stdout; with --json one JSON line goes to stdout and the
summary to stderr.`,
		Args: cobra.ArbitraryArgs,
		RunE: helpOrUnknown,
	}
	cmd.AddCommand(a.benchRunCmd(bench.ModeProduce, "Produce records and report throughput and ack latency"),
		a.benchRunCmd(bench.ModeConsume, "Consume a topic from its start and report throughput"),
		a.benchRunCmd(bench.ModeE2E, "Produce and consume at once and report end-to-end latency"))
	return cmd
}

func (a *app) benchRunCmd(mode bench.Mode, short string) *cobra.Command {
	var cfg bench.Config
	var progress string
	var topicConfigs map[string]string
	cmd := &cobra.Command{
		Use:   string(mode),
		Short: short,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = splitList(a.brokers)
			if len(topicConfigs) > 0 {
				cfg.TopicConfigs = map[string]*string{}
				for k, v := range topicConfigs {
					cfg.TopicConfigs[k] = &v
				}
			}
			cfg.ClientOpts = []kgo.Opt{kgo.ClientID(a.clientID), kgo.DialTimeout(a.timeout)}
			if err := cfg.Validate(mode); err != nil {
				return &usageError{err}
			}
			switch progress {
			case "auto":
				if isTerminal(a.stderr) {
					cfg.Progress = a.stderr
				}
			case "always":
				cfg.Progress = a.stderr
			case "never":
			default:
				return usageErrorf("--progress must be auto, always or never")
			}
			res, err := bench.Run(cmd.Context(), mode, cfg)
			if res != nil {
				out := a.stdout
				if a.json {
					if jerr := res.WriteJSON(a.stdout); jerr != nil {
						return jerr
					}
					out = a.stderr
				}
				if serr := res.WriteSummary(out); serr != nil {
					return serr
				}
			}
			if err != nil {
				if errors.Is(err, context.Canceled) && res != nil {
					return nil // interrupted: the partial result was printed
				}
				return failed("bench "+string(mode), err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Topic, "topic", "gregor-bench", "topic to use")
	f.Int32Var(&cfg.Partitions, "partitions", 1, "partitions when creating the topic")
	f.Int16Var(&cfg.ReplicationFactor, "replication-factor", 1, "replication factor when creating the topic")
	f.BoolVar(&cfg.NoCreate, "no-create", false, "do not create the topic")
	f.StringToStringVar(&topicConfigs, "topic-config", nil, "config of a created topic, key=value (repeatable), e.g. preallocate=true")
	f.Int64Var(&cfg.Records, "records", 1_000_000, "records to produce (consume: at most, stopping when caught up)")
	f.IntVar(&cfg.RecordSize, "size", 100, "value bytes per record (e2e: at least 8)")
	f.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "time limit of the load phase")
	f.StringVar(&progress, "progress", "auto", "live progress line on stderr: auto (when a terminal), always, never")
	if mode != bench.ModeConsume {
		f.StringVar(&cfg.Acks, "acks", "all", "required acks: 0, 1 or all")
		f.BoolVar(&cfg.Idempotent, "idempotent", false, "idempotent producer (acks=all only)")
		f.IntVar(&cfg.Producers, "producers", 1, "producer clients, each with its own connections")
		f.DurationVar(&cfg.Linger, "linger", 0, "producer linger (batching delay)")
		f.Int32Var(&cfg.BatchBytes, "batch-bytes", 0, "max record batch bytes (0: franz-go default, about 1 MB)")
		f.StringVar(&cfg.Compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
		f.Float64Var(&cfg.Rate, "rate", 0, "target records/s across all producers (0: unthrottled)")
	}
	return cmd
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
