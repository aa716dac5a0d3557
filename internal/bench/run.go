package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Mode is what a run measures.
type Mode string

// The run modes.
const (
	ModeProduce Mode = "produce" // producers only: throughput and ack latency
	ModeConsume Mode = "consume" // read existing records from the start: catch-up throughput
	ModeE2E     Mode = "e2e"     // producers and one consumer: ack and end-to-end latency
)

// Errors returned by Run.
var (
	ErrBenchConfig   = errors.New("bench: invalid configuration")
	ErrBenchNoRecord = errors.New("bench: no record was delivered")
)

// DefaultDuration bounds a run whose Config.Duration is zero.
const DefaultDuration = 60 * time.Second

// rateGrace is how far past Duration a rate-limited run may still send
// records that were due before Duration.
const rateGrace = time.Second

// timestampBytes is the size of the send time embedded at the start of each
// value in e2e runs (big-endian Unix nanoseconds of the intended send time).
const timestampBytes = 8

// Config describes one run. The zero value of every field but Brokers and
// Topic means its default.
type Config struct {
	Brokers           []string
	Topic             string
	Partitions        int32              // partitions of a created topic; default 1
	ReplicationFactor int16              // of a created topic; default 1
	NoCreate          bool               // do not create the topic
	TopicConfigs      map[string]*string // configs of a created topic (preallocate=true, ...)

	Records     int64         // records to produce or consume; default 1,000,000
	RecordSize  int           // value bytes per record; default 100 (at least 8 in e2e)
	Acks        string        // "0", "1" or "all" (default)
	Idempotent  bool          // idempotent producer (only with acks=all)
	Producers   int           // producer clients, each with its own connections; default 1
	Linger      time.Duration // kgo ProducerLinger; 0 is no linger
	BatchBytes  int32         // kgo ProducerBatchMaxBytes; 0 is kgo's default
	Compression string        // none (default), gzip, snappy, lz4, zstd
	Rate        float64       // target records/s across producers; 0 is unthrottled
	Duration    time.Duration // time limit for the run's load phase; default 60s

	// Progress, when set, receives a live progress line about twice a
	// second, each starting with a carriage return. Meant for a terminal.
	Progress io.Writer
	// ClientOpts are appended to every client's options (tests, TLS, SASL).
	ClientOpts []kgo.Opt
	Logger     *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.Records <= 0 {
		c.Records = 1_000_000
	}
	if c.RecordSize <= 0 {
		c.RecordSize = 100
	}
	if c.Acks == "" {
		c.Acks = "all"
	}
	if c.Producers <= 0 {
		c.Producers = 1
	}
	if c.Compression == "" {
		c.Compression = "none"
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c Config) Validate(mode Mode) error {
	c = c.withDefaults()
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("%w: no brokers", ErrBenchConfig)
	case c.Topic == "":
		return fmt.Errorf("%w: no topic", ErrBenchConfig)
	case mode == ModeE2E && c.RecordSize < timestampBytes:
		return fmt.Errorf("%w: e2e needs --size >= %d for the embedded timestamp", ErrBenchConfig, timestampBytes)
	case c.Rate < 0:
		return fmt.Errorf("%w: negative rate", ErrBenchConfig)
	case c.Idempotent && c.Acks != "all":
		return fmt.Errorf("%w: an idempotent producer needs acks=all", ErrBenchConfig)
	}
	switch mode {
	case ModeProduce, ModeConsume, ModeE2E:
	default:
		return fmt.Errorf("%w: unknown mode %q", ErrBenchConfig, mode)
	}
	if _, err := acksOpt(c.Acks); err != nil {
		return err
	}
	if _, err := compressionOpt(c.Compression); err != nil {
		return err
	}
	return nil
}

func acksOpt(s string) (kgo.Acks, error) {
	switch s {
	case "0":
		return kgo.NoAck(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "all", "-1":
		return kgo.AllISRAcks(), nil
	}
	return kgo.Acks{}, fmt.Errorf("%w: acks %q is not 0, 1 or all", ErrBenchConfig, s)
}

func compressionOpt(s string) (kgo.CompressionCodec, error) {
	switch s {
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
	return kgo.CompressionCodec{}, fmt.Errorf("%w: unknown compression %q", ErrBenchConfig, s)
}

// Result is what a run measured.
type Result struct {
	Mode       Mode    `json:"mode"`
	Topic      string  `json:"topic"`
	Partitions int32   `json:"partitions,omitempty"`
	RecordSize int     `json:"record_size"`
	Acks       string  `json:"acks,omitempty"`
	Producers  int     `json:"producers,omitempty"`
	TargetRate float64 `json:"target_rate,omitempty"`

	Records       int64         `json:"records"` // delivered (acknowledged, or consumed)
	Bytes         int64         `json:"bytes"`   // key and value bytes of those records
	Errors        int64         `json:"errors"`  // records whose produce failed
	Elapsed       time.Duration `json:"elapsed_ns"`
	RecordsPerSec float64       `json:"records_per_sec"`
	MiBPerSec     float64       `json:"mib_per_sec"`

	ProduceLatency *Summary `json:"produce_latency,omitempty"` // ack time - intended send time
	E2ELatency     *Summary `json:"e2e_latency,omitempty"`     // receive time - intended send time
}

func (r *Result) finish(elapsed time.Duration) {
	r.Elapsed = elapsed
	if s := elapsed.Seconds(); s > 0 {
		r.RecordsPerSec = float64(r.Records) / s
		r.MiBPerSec = float64(r.Bytes) / (1 << 20) / s
	}
}

// Run executes one benchmark run and returns what it measured. Cancelling
// ctx stops it early; what was delivered until then is still reported with
// ctx's error.
func Run(ctx context.Context, mode Mode, cfg Config) (*Result, error) {
	if err := cfg.Validate(mode); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if !cfg.NoCreate && mode != ModeConsume {
		if err := createTopic(ctx, cfg); err != nil {
			return nil, err
		}
	}
	switch mode {
	case ModeProduce:
		return runProduce(ctx, cfg)
	case ModeConsume:
		return runConsume(ctx, cfg)
	default:
		return runE2E(ctx, cfg)
	}
}

func (c Config) baseOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID("gregor-bench")}
	return append(opts, c.ClientOpts...)
}

func createTopic(ctx context.Context, cfg Config) error {
	cl, err := kgo.NewClient(cfg.baseOpts()...)
	if err != nil {
		return fmt.Errorf("bench: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, cfg.TopicConfigs, cfg.Topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("bench: create topic %s: %w", cfg.Topic, err)
	}
	return waitTopic(ctx, cl, adm, cfg.Topic)
}

// topicWait bounds how long a run waits for a created topic to have a leader
// for every partition.
const topicWait = 30 * time.Second

// waitTopic polls metadata until every broker names a leader for every
// partition of topic, so that the clock of a run does not include the
// cluster bringing a new topic online (clients would otherwise retry
// UNKNOWN_TOPIC_OR_PARTITION with backoff inside the measured time). Every
// broker is asked because each applies the metadata log on its own, and a
// Gregor broker names itself leader only once it serves the partition.
func waitTopic(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, topicWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && len(td.Partitions) > 0 && allLed(td.Partitions) &&
				everyBrokerLeads(ctx, cl, md.Brokers, topic, len(td.Partitions)) {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("bench: topic %s has no leader for every partition: %w", topic, ctx.Err())
		}
	}
}

// everyBrokerLeads reports whether each of brokers, asked directly, names a
// leader for all partitions of topic.
func everyBrokerLeads(ctx context.Context, cl *kgo.Client, brokers kadm.BrokerDetails, topic string, partitions int) bool {
	for _, b := range brokers {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(b.NodeID)))
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != partitions {
			return false
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

func allLed(ps kadm.PartitionDetails) bool {
	for _, p := range ps {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// payload returns a value of n random upper-case letters, as Kafka's
// producer perf test sends: compressible only as much as real text is.
func payload(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte('A' + r.IntN(26))
	}
	return b
}

// counters are the live totals the progress line reads.
type counters struct {
	records atomic.Int64
	bytes   atomic.Int64
	errors  atomic.Int64
}

// producers runs cfg.Producers producer clients until cfg.Records records
// have been sent or cfg.Duration has passed, then waits for every ack. It
// returns the merged ack-latency histogram.
type producers struct {
	cfg   Config
	e2e   bool
	sched Schedule
	next  atomic.Int64 // index of the next record to send
	c     *counters

	mu       sync.Mutex
	hist     Histogram
	firstErr error
}

func (p *producers) run(ctx context.Context) error {
	acks, _ := acksOpt(p.cfg.Acks)
	codec, _ := compressionOpt(p.cfg.Compression)
	opts := append(p.cfg.baseOpts(),
		kgo.DefaultProduceTopic(p.cfg.Topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerLinger(p.cfg.Linger),
		kgo.ProducerBatchCompression(codec),
	)
	if !p.cfg.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if p.cfg.BatchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(p.cfg.BatchBytes))
	}
	clients := make([]*kgo.Client, p.cfg.Producers)
	for i := range clients {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return fmt.Errorf("bench: producer client: %w", err)
		}
		clients[i] = cl
	}
	// sendCtx bounds the send phase; acks of records already sent are
	// awaited under ctx alone. Under a rate, loop stops at the first record
	// due after Duration, so a run of exactly Duration*Rate records is not
	// cut short by timer jitter on its last sends; the context then only
	// stops producers that fell more than rateGrace behind.
	limit := p.cfg.Duration
	if p.cfg.Rate > 0 {
		limit += rateGrace
	}
	sendCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	value := payload(p.cfg.RecordSize)
	p.sched = Schedule{Start: time.Now(), Rate: p.cfg.Rate}
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			defer cl.Close()
			p.loop(sendCtx, ctx, cl, value)
		})
	}
	wg.Wait()
	return nil
}

func (p *producers) loop(sendCtx, ctx context.Context, cl *kgo.Client, value []byte) {
	var timer *time.Timer
	promise := p.promise
	for sendCtx.Err() == nil {
		i := p.next.Add(1) - 1
		if i >= p.cfg.Records {
			break
		}
		intended := time.Now()
		if p.sched.Rate > 0 {
			if p.sched.Offset(i) >= p.cfg.Duration {
				break
			}
			intended = p.sched.Intended(i)
			if d := time.Until(intended); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-timer.C:
				case <-sendCtx.Done():
					// Never sent: it does not count.
					continue
				}
			}
		}
		v := value
		if p.e2e {
			v = make([]byte, len(value))
			copy(v, value)
			binary.BigEndian.PutUint64(v, uint64(intended.UnixNano()))
		}
		// The intended send time goes to the broker as CreateTime and to
		// the promise in the record's Context: kgo truncates Timestamp to
		// milliseconds, which would add up to 1 ms to every latency.
		cl.Produce(ctx, newTimedRecord(ctx, v, intended), promise)
	}
	if timer != nil {
		timer.Stop()
	}
	if err := cl.Flush(ctx); err != nil {
		p.cfg.Logger.Warn("flush failed", "err", err)
	}
}

// timedRecord is a record and its intended send time in one allocation.
type timedRecord struct {
	rec  kgo.Record
	sent sentAt
}

// sentAt carries a record's intended send time, at full precision, from the
// producer loop to its promise through the record's Context.
type sentAt struct {
	context.Context
	at time.Time
}

// newTimedRecord returns a record of value v whose CreateTime is intended
// (in milliseconds, as Kafka keeps it) and whose intendedSend is intended
// to the nanosecond.
func newTimedRecord(ctx context.Context, v []byte, intended time.Time) *kgo.Record {
	tr := &timedRecord{sent: sentAt{Context: ctx, at: intended}}
	tr.rec.Value = v
	tr.rec.Timestamp = intended
	tr.rec.Context = &tr.sent
	return &tr.rec
}

// intendedSend is the send time newTimedRecord gave r.
func intendedSend(r *kgo.Record) time.Time { return r.Context.(*sentAt).at }

func (p *producers) promise(r *kgo.Record, err error) {
	lat := time.Since(intendedSend(r))
	if err != nil {
		p.c.errors.Add(1)
		p.mu.Lock()
		if p.firstErr == nil {
			p.firstErr = err
		}
		p.mu.Unlock()
		return
	}
	p.c.records.Add(1)
	p.c.bytes.Add(int64(len(r.Value) + len(r.Key)))
	p.mu.Lock()
	p.hist.RecordDuration(lat)
	p.mu.Unlock()
}

func runProduce(ctx context.Context, cfg Config) (*Result, error) {
	c := &counters{}
	stop := startProgress(cfg, c, cfg.Records)
	p := &producers{cfg: cfg, c: c}
	start := time.Now()
	err := p.run(ctx)
	elapsed := time.Since(start)
	stop()
	res := newResult(ModeProduce, cfg, c)
	res.finish(elapsed)
	s := p.hist.Summarize()
	res.ProduceLatency = &s
	return res, producersErr(ctx, err, res, p.firstErr)
}

func newResult(mode Mode, cfg Config, c *counters) *Result {
	r := &Result{Mode: mode, Topic: cfg.Topic, RecordSize: cfg.RecordSize,
		Records: c.records.Load(), Bytes: c.bytes.Load(), Errors: c.errors.Load()}
	if mode != ModeConsume {
		r.Partitions = cfg.Partitions
		r.Acks = cfg.Acks
		r.Producers = cfg.Producers
		r.TargetRate = cfg.Rate
	}
	return r
}

func producersErr(ctx context.Context, runErr error, res *Result, first error) error {
	switch {
	case runErr != nil:
		return runErr
	case ctx.Err() != nil:
		return ctx.Err()
	case res.Records == 0 && first != nil:
		return fmt.Errorf("%w: %w", ErrBenchNoRecord, first)
	case res.Records == 0:
		return ErrBenchNoRecord
	}
	return nil
}

// runConsume reads up to cfg.Records records from the start of the topic,
// stopping early when it has read everything the topic held when the run
// began (the catch-up case) or when cfg.Duration has passed.
func runConsume(ctx context.Context, cfg Config) (*Result, error) {
	admCl, err := kgo.NewClient(cfg.baseOpts()...)
	if err != nil {
		return nil, fmt.Errorf("bench: client: %w", err)
	}
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListStartOffsets(ctx, cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = adm.ListEndOffsets(ctx, cfg.Topic)
	}
	if err == nil {
		err = ends.Error()
	}
	admCl.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: list offsets of %s: %w", cfg.Topic, err)
	}
	var available int64
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			available += o.Offset - s.Offset
		}
	})
	want := min(cfg.Records, available)
	if want == 0 {
		return nil, fmt.Errorf("%w: topic %s is empty", ErrBenchNoRecord, cfg.Topic)
	}

	c := &counters{}
	stop := startProgress(cfg, c, want)
	defer stop()
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	cl, err := kgo.NewClient(append(cfg.baseOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: starts.KOffsets()[cfg.Topic]}))...)
	if err != nil {
		return nil, fmt.Errorf("bench: consumer client: %w", err)
	}
	defer cl.Close()
	if _, err := consumeLoop(runCtx, cl, want, c, nil); err != nil && ctx.Err() != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	stop()
	res := newResult(ModeConsume, cfg, c)
	res.finish(elapsed)
	// The consumer did not choose the record size: report the mean.
	res.RecordSize = 0
	if res.Records > 0 {
		res.RecordSize = int(res.Bytes / res.Records)
	}
	if res.Records == 0 {
		return res, ErrBenchNoRecord
	}
	return res, nil
}

// consumeLoop polls until want() records arrived or ctx ends. With hist set it
// records each record's end-to-end latency from its embedded send time.
func consumeLoop(ctx context.Context, cl *kgo.Client, want int64, c *counters, hist *Histogram) (int64, error) {
	var got int64
	var firstErr error
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if firstErr == nil {
				firstErr = err
			}
		})
		now := time.Now().UnixNano()
		var n, nb int64
		fs.EachRecord(func(r *kgo.Record) {
			n++
			nb += int64(len(r.Value) + len(r.Key))
			if hist != nil && len(r.Value) >= timestampBytes {
				hist.Record(now - int64(binary.BigEndian.Uint64(r.Value)))
			}
		})
		got += n
		c.records.Add(n)
		c.bytes.Add(nb)
	}
	return got, firstErr
}

// runE2E produces like runProduce while one consumer reads the new records
// and measures receive time minus intended send time.
func runE2E(ctx context.Context, cfg Config) (*Result, error) {
	admCl, err := kgo.NewClient(cfg.baseOpts()...)
	if err != nil {
		return nil, fmt.Errorf("bench: client: %w", err)
	}
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	admCl.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: list end offsets of %s: %w", cfg.Topic, err)
	}
	cons, err := kgo.NewClient(append(cfg.baseOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: ends.KOffsets()[cfg.Topic]}),
		kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("bench: consumer client: %w", err)
	}
	defer cons.Close()

	c := &counters{}
	stop := startProgress(cfg, c, cfg.Records)
	defer stop()
	p := &producers{cfg: cfg, c: c, e2e: true}
	var e2e Histogram
	consCounters := &counters{}
	consCtx, cancelCons := context.WithCancel(ctx)
	defer cancelCons()
	// The consumer goroutine stops when it has read every record the
	// producers may send or when consCtx is cancelled below.
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = consumeLoop(consCtx, cons, cfg.Records, consCounters, &e2e) })

	start := time.Now()
	perr := p.run(ctx)
	elapsed := time.Since(start)
	// Wait for the consumer to see every acknowledged record, within a
	// grace period for the last fetch round trips.
	delivered := c.records.Load()
	grace := time.NewTimer(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	for consCounters.records.Load() < delivered {
		select {
		case <-tick.C:
			continue
		case <-grace.C:
		case <-ctx.Done():
		}
		break
	}
	grace.Stop()
	tick.Stop()
	cancelCons()
	wg.Wait()
	stop()

	res := newResult(ModeE2E, cfg, c)
	res.finish(elapsed)
	ps := p.hist.Summarize()
	res.ProduceLatency = &ps
	es := e2e.Summarize()
	res.E2ELatency = &es
	if err := producersErr(ctx, perr, res, p.firstErr); err != nil {
		return res, err
	}
	if got := consCounters.records.Load(); got < delivered {
		return res, fmt.Errorf("bench: consumer read %d of %d acknowledged records", got, delivered)
	}
	return res, nil
}
