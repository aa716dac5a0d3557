package cli

// gregor reassign (AlterPartitionReassignments / ListPartitionReassignments)
// and gregor cluster drain / unregister (reassignments off one broker, then
// UnregisterBroker). They work against any Kafka 4 cluster too.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// move is one partition of a reassignment plan.
type move struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Current   []int32 `json:"current_replicas,omitempty"`
	Replicas  []int32 `json:"replicas"`
	Error     string  `json:"error,omitempty"`
}

// planFile is Kafka's reassignment JSON (kafka-reassign-partitions
// --reassignment-json-file).
type planFile struct {
	Version    int    `json:"version"`
	Partitions []move `json:"partitions"`
}

// reassignOpts are the flags shared by reassign and cluster drain.
type reassignOpts struct {
	dryRun bool
	wait   bool
}

func (a *app) reassignCmd() *cobra.Command {
	var (
		plan, topic, replicas string
		partition             int32
		o                     reassignOpts
	)
	cmd := &cobra.Command{
		Use:   "reassign (--plan FILE | --topic T --partition P --replicas 1,2,4)",
		Short: "Move partitions to other brokers (AlterPartitionReassignments)",
		Long: `Move partition replicas. The new replicas are added, catch up and join the
ISR; only then are the old ones removed (and leadership moved off a removed
leader). --plan takes Kafka's reassignment JSON:
  {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,4]}]}
--dry-run prints the plan without changing anything; --wait returns once
every move completed.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var moves []move
			switch {
			case plan != "" && (topic != "" || replicas != ""):
				return usageErrorf("give --plan or --topic/--partition/--replicas, not both")
			case plan != "":
				b, err := os.ReadFile(plan)
				if err != nil {
					return usageErrorf("--plan: %v", err)
				}
				var f planFile
				if err := json.Unmarshal(b, &f); err != nil {
					return usageErrorf("--plan %s: %v", plan, err)
				}
				if len(f.Partitions) == 0 {
					return usageErrorf("--plan %s lists no partitions", plan)
				}
				moves = f.Partitions
			case topic != "" && replicas != "":
				ids, err := parseBrokerIDs(replicas)
				if err != nil {
					return usageErrorf("--replicas: %v", err)
				}
				moves = []move{{Topic: topic, Partition: partition, Replicas: ids}}
			default:
				return usageErrorf("give --plan FILE, or --topic, --partition and --replicas")
			}
			for _, m := range moves {
				if len(m.Replicas) == 0 {
					return usageErrorf("%s[%d]: no replicas (cancel with 'gregor reassign cancel')", m.Topic, m.Partition)
				}
			}
			return a.runMoves(cmd.Context(), moves, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&plan, "plan", "", "reassignment JSON file (Kafka's format)")
	fl.StringVar(&topic, "topic", "", "topic of the partition to move")
	fl.Int32Var(&partition, "partition", 0, "partition to move")
	fl.StringVar(&replicas, "replicas", "", "target replicas, comma-separated broker ids, preferred leader first")
	fl.BoolVar(&o.dryRun, "dry-run", false, "print the plan, change nothing")
	fl.BoolVar(&o.wait, "wait", false, "wait until every move completed")
	cmd.AddCommand(a.reassignListCmd(), a.reassignCancelCmd())
	return cmd
}

func parseBrokerIDs(s string) ([]int32, error) {
	var ids []int32
	for _, f := range splitList(s) {
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a broker id", f)
		}
		ids = append(ids, int32(v))
	}
	if len(ids) == 0 {
		return nil, errors.New("no broker ids")
	}
	return ids, nil
}

// adminClient is a kgo client, its kadm wrapper, and a per-request
// context maker bounded by --timeout.
type adminClient struct {
	cl      *kgo.Client
	adm     *kadm.Client
	timeout time.Duration
}

func (a *app) adminClient() (*adminClient, error) {
	cl, err := a.newClient()
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(a.timeout.Milliseconds(), 1<<31-1)))
	return &adminClient{cl: cl, adm: adm, timeout: a.timeout}, nil
}

func (c *adminClient) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.timeout)
}

// runMoves prints the plan (current replicas from Metadata), and unless a
// dry run submits it, reports each partition's answer and optionally waits
// for completion.
func (a *app) runMoves(parent context.Context, moves []move, o reassignOpts) error {
	c, err := a.adminClient()
	if err != nil {
		return err
	}
	defer c.cl.Close()
	ctx, cancel := c.ctx(parent)
	md, err := c.adm.Metadata(ctx)
	cancel()
	if err != nil {
		return failed("read metadata", err)
	}
	for i := range moves {
		m := &moves[i]
		if td, ok := md.Topics[m.Topic]; ok {
			if pd, ok := td.Partitions[m.Partition]; ok {
				m.Current = pd.Replicas
			}
		}
	}
	slices.SortFunc(moves, func(x, y move) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	if o.dryRun {
		if a.json {
			return a.writeJSON(planFile{Version: 1, Partitions: moves})
		}
		a.printMoves(moves)
		fmt.Fprintln(a.stdout, "Dry run: nothing changed; run again without --dry-run to move these partitions.")
		return nil
	}
	var req kadm.AlterPartitionAssignmentsReq
	for _, m := range moves {
		req.Assign(m.Topic, m.Partition, m.Replicas)
	}
	ctx, cancel = c.ctx(parent)
	res, err := c.adm.AlterPartitionAssignments(ctx, req)
	cancel()
	if err != nil {
		return failed("reassign", err)
	}
	var firstErr error
	for i := range moves {
		m := &moves[i]
		if r, ok := res[m.Topic][m.Partition]; ok && r.Err != nil {
			m.Error = r.Err.Error()
			if r.ErrMessage != "" {
				m.Error += ": " + r.ErrMessage
			}
			if firstErr == nil {
				firstErr = r.Err
			}
		}
	}
	if a.json {
		if err := a.writeJSON(planFile{Version: 1, Partitions: moves}); err != nil {
			return err
		}
	} else {
		a.printMoves(moves)
	}
	if firstErr != nil {
		return failed("reassign", firstErr)
	}
	if o.wait {
		return a.waitMoves(parent, c, moves)
	}
	if !a.json {
		fmt.Fprintln(a.stdout, "Started; follow it with 'gregor reassign list'.")
	}
	return nil
}

func (a *app) printMoves(moves []move) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tTARGET\tRESULT")
	for _, m := range moves {
		result := "ok"
		if m.Error != "" {
			result = m.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.Topic, m.Partition, ids(m.Current), ids(m.Replicas), result)
	}
	tw.Flush()
}

func ids(xs []int32) string {
	if len(xs) == 0 {
		return "-"
	}
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ","
		}
		s += strconv.Itoa(int(x))
	}
	return s
}

// waitMoves polls ListPartitionReassignments until none of moves is in
// progress.
func (a *app) waitMoves(parent context.Context, c *adminClient, moves []move) error {
	set := make(kadm.TopicsSet)
	for _, m := range moves {
		set.Add(m.Topic, m.Partition)
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		ctx, cancel := c.ctx(parent)
		l, err := c.adm.ListPartitionReassignments(ctx, set)
		cancel()
		if err == nil && len(l.Sorted()) == 0 {
			if !a.json {
				fmt.Fprintln(a.stdout, "Done: every move completed.")
			}
			return nil
		}
		select {
		case <-parent.Done():
			return failed("wait for the reassignments", parent.Err())
		case <-t.C:
		}
	}
}

type ongoing struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
	Adding    []int32 `json:"adding_replicas"`
	Removing  []int32 `json:"removing_replicas"`
}

// listAll lists every reassignment in progress (null topics: all).
func listAll(ctx context.Context, cl *kgo.Client) ([]ongoing, error) {
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := []ongoing{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, ongoing{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas,
				Adding: p.AddingReplicas, Removing: p.RemovingReplicas})
		}
	}
	slices.SortFunc(out, func(x, y ongoing) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	return out, nil
}

func (a *app) reassignListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the reassignments in progress",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			defer c.cl.Close()
			ctx, cancel := c.ctx(cmd.Context())
			defer cancel()
			l, err := listAll(ctx, c.cl)
			if err != nil {
				return failed("list reassignments", err)
			}
			if a.json {
				return a.writeJSON(l)
			}
			if len(l) == 0 {
				fmt.Fprintln(a.stdout, "No reassignment in progress.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICAS\tADDING\tREMOVING")
			for _, o := range l {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", o.Topic, o.Partition, ids(o.Replicas), ids(o.Adding), ids(o.Removing))
			}
			return tw.Flush()
		},
	}
}

func (a *app) reassignCancelCmd() *cobra.Command {
	var (
		topic     string
		partition int32
	)
	cmd := &cobra.Command{
		Use:   "cancel [--topic T [--partition P]]",
		Short: "Cancel reassignments in progress (all, a topic's, or one partition's): added replicas are dropped",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			defer c.cl.Close()
			ctx, cancel := c.ctx(cmd.Context())
			defer cancel()
			var req kadm.AlterPartitionAssignmentsReq
			if cmd.Flags().Changed("partition") {
				if topic == "" {
					return usageErrorf("--partition needs --topic")
				}
				req.Assign(topic, partition, nil)
			} else {
				l, err := listAll(ctx, c.cl)
				if err != nil {
					return failed("list reassignments", err)
				}
				for _, o := range l {
					if topic == "" || o.Topic == topic {
						req.Assign(o.Topic, o.Partition, nil)
					}
				}
			}
			if len(req) == 0 {
				fmt.Fprintln(a.stdout, "No reassignment in progress.")
				return nil
			}
			res, err := c.adm.AlterPartitionAssignments(ctx, req)
			if err != nil {
				return failed("cancel reassignments", err)
			}
			var firstErr error
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tRESULT")
			for _, r := range res.Sorted() {
				result := "cancelled"
				if r.Err != nil {
					result = r.Err.Error()
					firstErr = cmp.Or(firstErr, r.Err)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Topic, r.Partition, result)
			}
			tw.Flush()
			if firstErr != nil {
				return failed("cancel reassignments", firstErr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic's reassignments")
	cmd.Flags().Int32Var(&partition, "partition", 0, "only this partition (with --topic)")
	return cmd
}

// drainPlan moves every replica on broker off it: each is replaced, in
// place (so a preferred leader's slot goes to its replacement), by the
// live broker outside the partition's replicas holding the fewest
// replicas, counting the moves planned so far (ties: lowest id).
func drainPlan(md kadm.Metadata, broker int32) ([]move, error) {
	load := make(map[int32]int)
	var live []int32
	for _, b := range md.Brokers {
		if b.NodeID != broker {
			live = append(live, b.NodeID)
			load[b.NodeID] = 0
		}
	}
	slices.Sort(live)
	var moves []move
	for _, td := range md.Topics.Sorted() {
		for _, pd := range td.Partitions.Sorted() {
			for _, r := range pd.Replicas {
				if _, ok := load[r]; ok {
					load[r]++
				}
			}
		}
	}
	for _, td := range md.Topics.Sorted() {
		for _, pd := range td.Partitions.Sorted() {
			i := slices.Index(pd.Replicas, broker)
			if i < 0 {
				continue
			}
			best := int32(-1)
			for _, id := range live {
				if slices.Contains(pd.Replicas, id) {
					continue
				}
				if best < 0 || load[id] < load[best] {
					best = id
				}
			}
			if best < 0 {
				return nil, fmt.Errorf("%s[%d] has replicas %s: no live broker left to take broker %d's replica",
					td.Topic, pd.Partition, ids(pd.Replicas), broker)
			}
			load[best]++
			target := slices.Clone(pd.Replicas)
			target[i] = best
			moves = append(moves, move{Topic: td.Topic, Partition: pd.Partition, Current: pd.Replicas, Replicas: target})
		}
	}
	return moves, nil
}

func (a *app) clusterDrainCmd() *cobra.Command {
	var (
		broker int32
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "drain --broker N",
		Short: "Move every replica off a broker, then unregister it once it is stopped",
		Long: `Move every replica off broker N (one reassignment per partition, to the live
broker with the fewest replicas), wait until the moves completed, then
unregister the broker (UnregisterBroker) if it is no longer running. A broker
that still runs would register again: stop it, then run
'gregor cluster unregister --broker N'. --dry-run prints the plan.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("broker") {
				return usageErrorf("--broker is required")
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			defer c.cl.Close()
			ctx, cancel := c.ctx(cmd.Context())
			md, err := c.adm.Metadata(ctx)
			cancel()
			if err != nil {
				return failed("read metadata", err)
			}
			moves, err := drainPlan(md, broker)
			if err != nil {
				return failed("plan the drain", err)
			}
			if len(moves) == 0 && !dryRun {
				fmt.Fprintf(a.stdout, "Broker %d holds no replica.\n", broker)
				return a.unregisterIfStopped(cmd.Context(), c, broker)
			}
			if err := a.runMoves(cmd.Context(), moves, reassignOpts{dryRun: dryRun, wait: true}); err != nil || dryRun {
				return err
			}
			return a.unregisterIfStopped(cmd.Context(), c, broker)
		},
	}
	cmd.Flags().Int32Var(&broker, "broker", -1, "the broker id to drain")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, change nothing")
	return cmd
}

// unregisterIfStopped unregisters broker unless it is still live (listed
// in Metadata): a running broker would only register again.
func (a *app) unregisterIfStopped(parent context.Context, c *adminClient, broker int32) error {
	ctx, cancel := c.ctx(parent)
	defer cancel()
	md, err := c.adm.BrokerMetadata(ctx)
	if err != nil {
		return failed("read metadata", err)
	}
	if slices.Contains(md.Brokers.NodeIDs(), broker) {
		fmt.Fprintf(a.stdout, "Broker %d is drained but still running; stop it, then run 'gregor cluster unregister --broker %d'.\n", broker, broker)
		return nil
	}
	return a.unregister(ctx, c.cl, broker)
}

func (a *app) unregister(ctx context.Context, cl *kgo.Client, broker int32) error {
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = broker
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return failed(fmt.Sprintf("unregister broker %d", broker), err)
	}
	fmt.Fprintf(a.stdout, "Broker %d unregistered.\n", broker)
	return nil
}

func (a *app) clusterUnregisterCmd() *cobra.Command {
	var broker int32
	cmd := &cobra.Command{
		Use:   "unregister --broker N",
		Short: "Remove a stopped broker's registration (UnregisterBroker)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("broker") {
				return usageErrorf("--broker is required")
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			defer c.cl.Close()
			ctx, cancel := c.ctx(cmd.Context())
			defer cancel()
			return a.unregister(ctx, c.cl, broker)
		},
	}
	cmd.Flags().Int32Var(&broker, "broker", -1, "the broker id to unregister")
	return cmd
}
