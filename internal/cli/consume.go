package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type consumeFlags struct {
	fromBeginning bool
	offset        int64
	timestamp     string
	count         int64
	partitions    []int32
	format        string
	exitAtEnd     bool
	group         string
}

const formatHelp = `The --format string is printed once per record, followed by a newline.
Directives:
  %v  value            %k  key            %T  topic
  %p  partition        %o  offset         %t  timestamp (unix milliseconds)
  %h  headers as k=v pairs joined by ","  %%  a literal %
Escapes \n, \t and \\ are interpreted. A null key or value prints as nothing.
--json ignores --format and prints one JSON object per line:
  {"topic","partition","offset","timestamp","key","value","headers":[{"key","value"}]}
with key and value as strings (null when null).`

func (a *app) consumeCmd() *cobra.Command {
	f := consumeFlags{offset: -1}
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic",
		Long: `Print records of a topic, reading its partitions directly (no consumer
group, no committed offsets).

Where to start (default: the end, so only new records are printed):
  --from-beginning   the log start offset of each partition
  --offset N         offset N of each partition (out of range: the start)
  --timestamp T      the first record at or after T (unix ms or RFC3339)

It follows new records until interrupted, unless -n COUNT records have been
printed or --exit-at-end is given, which stops once every partition reached
the end offset it had when consume started.

` + formatHelp,
		Example: `  gregor consume events --from-beginning
  gregor consume events --from-beginning --exit-at-end --format '%p/%o %k=%v'
  gregor consume events --partition 0,2 --offset 100 -n 10 --json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.consume(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.fromBeginning, "from-beginning", false, "start at the log start offset")
	fl.Int64Var(&f.offset, "offset", -1, "start at this offset in every partition consumed")
	fl.StringVar(&f.timestamp, "timestamp", "", "start at the first record at or after this time (unix ms or RFC3339)")
	fl.Int64VarP(&f.count, "count", "n", 0, "stop after this many records (0: no limit)")
	fl.Int32SliceVar(&f.partitions, "partition", nil, "partitions to read (repeatable or comma list; default all)")
	fl.StringVar(&f.format, "format", "%v", "output format per record; see above")
	fl.BoolVar(&f.exitAtEnd, "exit-at-end", false, "stop after reaching the end offsets observed at start")
	fl.StringVar(&f.group, "group", "", "consume as a member of this consumer group, committing offsets as records are printed (resumes where the group left off)")
	return cmd
}

func (a *app) consume(cmd *cobra.Command, topic string, f consumeFlags) error {
	fl := cmd.Flags()
	starts := 0
	for _, name := range []string{"from-beginning", "offset", "timestamp"} {
		if fl.Changed(name) {
			starts++
		}
	}
	if starts > 1 {
		return usageErrorf("give at most one of --from-beginning, --offset, --timestamp")
	}
	if fl.Changed("offset") && f.offset < 0 {
		return usageErrorf("--offset %d: must be >= 0", f.offset)
	}
	if f.count < 0 {
		return usageErrorf("-n %d: must be >= 0", f.count)
	}
	var tsMillis int64
	if f.timestamp != "" {
		var err error
		if tsMillis, err = parseTimestamp(f.timestamp); err != nil {
			return err
		}
	}
	var render func(w *bufio.Writer, r *kgo.Record)
	if a.json {
		render = renderJSON
	} else {
		fm, err := compileFormat(f.format)
		if err != nil {
			return err
		}
		render = fm.render
	}

	ctx := cmd.Context()
	if f.group != "" {
		return a.consumeGroup(ctx, topic, f, render)
	}
	start, end, err := a.resolveOffsets(ctx, topic, f, tsMillis)
	if err != nil {
		return err
	}

	// Partitions already at their end offset are done before reading.
	remaining := map[int32]bool{}
	if f.exitAtEnd {
		for p, e := range end {
			if start[p] < e {
				remaining[p] = true
			}
		}
		if len(remaining) == 0 {
			return nil
		}
	}

	offsets := make(map[int32]kgo.Offset, len(start))
	for p, o := range start {
		offsets[p] = kgo.NewOffset().At(o)
	}
	// Direct partition consumption. A --group flag would instead use
	// kgo.ConsumerGroup(group) with kgo.ConsumeTopics(topic) and commit
	// offsets; the loop below stays the same.
	cl, err := a.newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	w := bufio.NewWriterSize(a.stdout, 64<<10)
	defer w.Flush()
	var printed int64
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil // interrupted: a normal way to stop following
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = failed(fmt.Sprintf("consume %s partition %d", t, p), err)
			}
		})
		if ferr != nil {
			return ferr
		}
		stop := false
		fetches.EachRecord(func(r *kgo.Record) {
			if stop {
				return
			}
			render(w, r)
			printed++
			if f.count > 0 && printed >= f.count {
				stop = true
			}
			if f.exitAtEnd && r.Offset+1 >= end[r.Partition] {
				delete(remaining, r.Partition)
				if len(remaining) == 0 {
					stop = true
				}
			}
		})
		if err := w.Flush(); err != nil {
			return failed("write output", err)
		}
		if stop {
			return nil
		}
	}
}

// resolveOffsets returns, for every partition to read, the offset to start at
// and (for --exit-at-end) the end offset at start. Resolving the start here
// rather than in kgo lets --exit-at-end know which partitions are already
// done.
func (a *app) resolveOffsets(ctx context.Context, topic string, f consumeFlags, tsMillis int64) (start, end map[int32]int64, err error) {
	adm, actx, done, err := a.newAdmin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	tds, err := adm.ListTopics(actx, topic)
	if err != nil {
		return nil, nil, failed("describe topic "+topic, err)
	}
	td, ok := tds[topic]
	if !ok {
		return nil, nil, failed("describe topic "+topic, errors.New("topic missing from metadata response"))
	}
	if td.Err != nil {
		return nil, nil, failed("describe topic "+topic, td.Err)
	}
	parts := f.partitions
	if len(parts) == 0 {
		for p := range td.Partitions {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	for _, p := range parts {
		if _, ok := td.Partitions[p]; !ok {
			return nil, nil, usageErrorf("--partition %d: topic %s has %d partitions", p, topic, len(td.Partitions))
		}
	}

	ends, err := adm.ListEndOffsets(actx, topic)
	if err != nil {
		return nil, nil, failed("list end offsets of "+topic, err)
	}
	var listed kadm.ListedOffsets
	switch {
	case f.fromBeginning:
		listed, err = adm.ListStartOffsets(actx, topic)
	case f.timestamp != "":
		listed, err = adm.ListOffsetsAfterMilli(actx, tsMillis, topic)
	case f.offset >= 0:
	default:
		listed = ends
	}
	if err != nil {
		return nil, nil, failed("list offsets of "+topic, err)
	}
	start = make(map[int32]int64, len(parts))
	end = make(map[int32]int64, len(parts))
	for _, p := range parts {
		e, ok := ends.Lookup(topic, p)
		if !ok {
			return nil, nil, failed(fmt.Sprintf("list end offset of %s partition %d", topic, p), errors.New("missing from response"))
		}
		if e.Err != nil {
			return nil, nil, failed(fmt.Sprintf("list end offset of %s partition %d", topic, p), e.Err)
		}
		end[p] = e.Offset
		if f.offset >= 0 {
			start[p] = f.offset
			continue
		}
		s, ok := listed.Lookup(topic, p)
		if !ok {
			return nil, nil, failed(fmt.Sprintf("list offset of %s partition %d", topic, p), errors.New("missing from response"))
		}
		if s.Err != nil {
			return nil, nil, failed(fmt.Sprintf("list offset of %s partition %d", topic, p), s.Err)
		}
		start[p] = s.Offset
		if start[p] < 0 { // no record at or after the timestamp
			start[p] = e.Offset
		}
	}
	return start, end, nil
}

func parseTimestamp(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, usageErrorf("--timestamp %q: want unix milliseconds or RFC3339 (2006-01-02T15:04:05Z)", s)
	}
	return t.UnixMilli(), nil
}

// recordFormat is a compiled --format string: literal text and directives.
type recordFormat struct{ parts []formatPart }

type formatPart struct {
	lit string
	dir byte // 0 for a literal
}

func compileFormat(s string) (recordFormat, error) {
	var (
		f   recordFormat
		lit strings.Builder
	)
	flushLit := func() {
		if lit.Len() > 0 {
			f.parts = append(f.parts, formatPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case '\\':
				lit.WriteByte('\\')
			default:
				lit.WriteByte('\\')
				lit.WriteByte(s[i])
			}
		case c == '%':
			if i+1 >= len(s) {
				return f, usageErrorf("--format %q: ends with a lone %%", s)
			}
			i++
			switch d := s[i]; d {
			case '%':
				lit.WriteByte('%')
			case 'v', 'k', 'p', 'o', 't', 'h', 'T':
				flushLit()
				f.parts = append(f.parts, formatPart{dir: d})
			default:
				return f, usageErrorf("--format %q: unknown directive %%%c (want %%v %%k %%T %%p %%o %%t %%h %%%%)", s, d)
			}
		default:
			lit.WriteByte(c)
		}
	}
	flushLit()
	return f, nil
}

func (f recordFormat) render(w *bufio.Writer, r *kgo.Record) {
	for _, p := range f.parts {
		switch p.dir {
		case 0:
			w.WriteString(p.lit)
		case 'v':
			w.Write(r.Value)
		case 'k':
			w.Write(r.Key)
		case 'T':
			w.WriteString(r.Topic)
		case 'p':
			w.WriteString(strconv.FormatInt(int64(r.Partition), 10))
		case 'o':
			w.WriteString(strconv.FormatInt(r.Offset, 10))
		case 't':
			w.WriteString(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(h.Key)
				w.WriteByte('=')
				w.Write(h.Value)
			}
		}
	}
	w.WriteByte('\n')
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type jsonRecord struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   []jsonHeader `json:"headers"`
}

func renderJSON(w *bufio.Writer, r *kgo.Record) {
	jr := jsonRecord{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Key:       bytesPtr(r.Key), Value: bytesPtr(r.Value),
		Headers: make([]jsonHeader, 0, len(r.Headers)),
	}
	for _, h := range r.Headers {
		jr.Headers = append(jr.Headers, jsonHeader{Key: h.Key, Value: string(h.Value)})
	}
	// Encoding these plain types cannot fail; a write error surfaces at Flush.
	b, _ := json.Marshal(jr)
	w.Write(b)
	w.WriteByte('\n')
}

func bytesPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// consumeGroup consumes as a consumer group member: partitions are assigned
// by the group, printing starts at the group's committed offsets (or, with
// none, at the start with --from-beginning and at the end otherwise), and
// every printed record is committed.
func (a *app) consumeGroup(ctx context.Context, topic string, f consumeFlags, render func(w *bufio.Writer, r *kgo.Record)) error {
	reset := kgo.NewOffset().AtEnd()
	if f.fromBeginning {
		reset = kgo.NewOffset().AtStart()
	}
	cl, err := a.newClient(kgo.ConsumerGroup(f.group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(reset),
		kgo.AutoCommitMarks(), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		defer cancel()
		cl.CommitMarkedOffsets(cctx)
	}()
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	defer w.Flush()
	var printed int64
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = failed(fmt.Sprintf("consume %s partition %d", t, p), err)
			}
		})
		if ferr != nil {
			return ferr
		}
		stop := false
		fetches.EachRecord(func(r *kgo.Record) {
			if stop {
				return
			}
			render(w, r)
			cl.MarkCommitRecords(r)
			printed++
			stop = f.count > 0 && printed >= f.count
		})
		if err := w.Flush(); err != nil {
			return failed("write output", err)
		}
		if stop {
			return nil
		}
	}
}
