package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (a *app) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster (id, controller, brokers, partition health) and move leaders",
		Args:  cobra.ArbitraryArgs,
		RunE:  helpOrUnknown,
	}
	cmd.AddCommand(a.clusterDescribeCmd(), a.clusterElectLeadersCmd())
	cmd.AddCommand(a.clusterDrainCmd(), a.clusterUnregisterCmd(), a.clusterLocalCmd())
	return cmd
}

type brokerSummary struct {
	NodeID int32   `json:"node_id"`
	Host   string  `json:"host"`
	Port   int32   `json:"port"`
	Rack   *string `json:"rack"`
	Fenced bool    `json:"fenced"`
	// Leaders and Replicas count the partitions the broker leads and
	// holds.
	Leaders  int `json:"leaders"`
	Replicas int `json:"replicas"`
}

type partitionHealth struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

type clusterSummary struct {
	ClusterID  string          `json:"cluster_id"`
	Controller int32           `json:"controller"`
	Brokers    []brokerSummary `json:"brokers"`
	Topics     int             `json:"topics"`
	Partitions int             `json:"partitions"`
	// Quorum is the metadata quorum (DescribeQuorum); absent when the
	// cluster does not answer it.
	Quorum *quorumSummary `json:"quorum,omitempty"`
	// UnderReplicated are the partitions whose ISR is smaller than their
	// replica set; Offline those without a leader.
	UnderReplicated []partitionHealth `json:"under_replicated"`
	Offline         []partitionHealth `json:"offline"`
}

// describeBrokers asks DescribeCluster v2 for every registered broker,
// fenced ones included (KIP-1073); a broker that answers an older version
// lists the unfenced ones only.
func describeBrokers(ctx context.Context, cl *kgo.Client) (clusterID string, controller int32, brokers []brokerSummary, err error) {
	req := kmsg.NewPtrDescribeClusterRequest()
	req.EndpointType = 1
	req.IncludeFencedBrokers = true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", 0, nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return "", 0, nil, err
	}
	for _, b := range resp.Brokers {
		brokers = append(brokers, brokerSummary{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack, Fenced: b.IsFenced})
	}
	sort.Slice(brokers, func(i, j int) bool { return brokers[i].NodeID < brokers[j].NodeID })
	return resp.ClusterID, resp.ControllerID, brokers, nil
}

// summarizeCluster counts leaders and replicas per broker and lists the
// under-replicated and offline partitions of md.
func summarizeCluster(s *clusterSummary, md kadm.Metadata) {
	byID := map[int32]*brokerSummary{}
	for i := range s.Brokers {
		byID[s.Brokers[i].NodeID] = &s.Brokers[i]
	}
	for _, name := range md.Topics.Names() {
		td := md.Topics[name]
		s.Topics++
		for _, p := range td.Partitions.Sorted() {
			s.Partitions++
			h := partitionHealth{Topic: name, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR}
			if b := byID[p.Leader]; b != nil && p.Leader >= 0 {
				b.Leaders++
			}
			for _, r := range p.Replicas {
				if b := byID[r]; b != nil {
					b.Replicas++
				}
			}
			if p.Leader < 0 {
				s.Offline = append(s.Offline, h)
			}
			if len(p.ISR) < len(p.Replicas) {
				s.UnderReplicated = append(s.UnderReplicated, h)
			}
		}
	}
}

func (a *app) clusterDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Print the cluster id, the active controller, the brokers and the partitions' health",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.newClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			defer cancel()
			adm := kadm.NewClient(cl)
			md, err := adm.Metadata(ctx)
			if err != nil {
				return failed("describe cluster", err)
			}
			s := clusterSummary{ClusterID: md.Cluster, Controller: md.Controller, Brokers: []brokerSummary{},
				UnderReplicated: []partitionHealth{}, Offline: []partitionHealth{}}
			if id, ctrl, brokers, err := describeBrokers(ctx, cl); err == nil {
				s.ClusterID, s.Controller, s.Brokers = id, ctrl, brokers
			} else {
				for _, b := range md.Brokers {
					s.Brokers = append(s.Brokers, brokerSummary{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
				}
				sort.Slice(s.Brokers, func(i, j int) bool { return s.Brokers[i].NodeID < s.Brokers[j].NodeID })
			}
			summarizeCluster(&s, md)
			s.Quorum = clusterQuorum(ctx, cl)
			if a.json {
				return a.writeJSON(s)
			}
			if err := a.printCluster(s); err != nil {
				return err
			}
			return a.printClusterQuorum(s.Quorum)
		},
	}
}

func (a *app) printCluster(s clusterSummary) error {
	fmt.Fprintf(a.stdout, "Cluster: %s\tController: %d\tTopics: %d\tPartitions: %d\tUnder-replicated: %d\tOffline: %d\n",
		s.ClusterID, s.Controller, s.Topics, s.Partitions, len(s.UnderReplicated), len(s.Offline))
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tHOST\tPORT\tRACK\tSTATE\tLEADERS\tREPLICAS")
	for _, b := range s.Brokers {
		rack := "-"
		if b.Rack != nil {
			rack = *b.Rack
		}
		state := "unfenced"
		if b.Fenced {
			state = "fenced"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%d\n", b.NodeID, b.Host, b.Port, rack, state, b.Leaders, b.Replicas)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, sec := range []struct {
		title string
		parts []partitionHealth
	}{{"Under-replicated partitions", s.UnderReplicated}, {"Offline partitions", s.Offline}} {
		if len(sec.parts) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "\n%s:\n", sec.title)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tREPLICAS\tISR")
		for _, p := range sec.parts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%v\n", p.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

type electionOutcome struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Leader is the leader after the election (or, in a dry run, the
	// one it would choose); -1 when none.
	Leader int32  `json:"leader"`
	Result string `json:"result"`
}

func (a *app) clusterElectLeadersCmd() *cobra.Command {
	var (
		topic     string
		partition int32
		typ       string
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "elect-leaders",
		Short: "Move leadership back to preferred replicas, or elect leaders for offline partitions (unclean)",
		Example: `  gregor cluster elect-leaders                       # every partition to its preferred leader
  gregor cluster elect-leaders --topic orders --partition 3
  gregor cluster elect-leaders --type unclean --topic orders --dry-run`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			how := kadm.ElectPreferredReplica
			switch typ {
			case "preferred":
			case "unclean":
				how = kadm.ElectLiveReplica
			default:
				return usageErrorf("--type must be preferred or unclean, not %q", typ)
			}
			if partition >= 0 && topic == "" {
				return usageErrorf("--partition needs --topic")
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var set kadm.TopicsSet
			if topic != "" {
				md, err := adm.Metadata(ctx, topic)
				if err != nil {
					return failed("elect leaders", err)
				}
				td, ok := md.Topics[topic]
				if !ok || td.Err != nil {
					return failed("elect leaders", fmt.Errorf("topic %s: %w", topic, kerr.UnknownTopicOrPartition))
				}
				set = kadm.TopicsSet{}
				for _, p := range td.Partitions.Sorted() {
					if partition < 0 || p.Partition == partition {
						set.Add(topic, p.Partition)
					}
				}
				if partition >= 0 && len(set[topic]) == 0 {
					return failed("elect leaders", fmt.Errorf("%s-%d: %w", topic, partition, kerr.UnknownTopicOrPartition))
				}
			}
			var out []electionOutcome
			if dryRun {
				out, err = planElections(ctx, adm, how, topic, set)
			} else {
				out, err = runElections(ctx, adm, how, set)
			}
			if err != nil {
				return failed("elect leaders", err)
			}
			if a.json {
				return a.writeJSON(map[string]any{"type": typ, "dry_run": dryRun, "partitions": out})
			}
			if len(out) == 0 {
				fmt.Fprintln(a.stdout, "No partition needs an election.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tRESULT")
			for _, o := range out {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", o.Topic, o.Partition, o.Leader, o.Result)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to elect for (default: every partition of every topic)")
	cmd.Flags().Int32Var(&partition, "partition", -1, "partition of --topic (default: all of its partitions)")
	cmd.Flags().StringVar(&typ, "type", "preferred", "election type: preferred or unclean")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be elected, change nothing")
	return cmd
}

// runElections sends ElectLeaders and reads the new leaders back.
func runElections(ctx context.Context, adm *kadm.Client, how kadm.ElectLeadersHow, set kadm.TopicsSet) ([]electionOutcome, error) {
	rs, err := adm.ElectLeaders(ctx, how, set)
	if err != nil {
		return nil, err
	}
	var topics []string
	for t := range rs {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	md, _ := adm.Metadata(ctx, topics...)
	var out []electionOutcome
	for _, t := range topics {
		for _, p := range slices.Sorted(func(yield func(int32) bool) {
			for p := range rs[t] {
				if !yield(p) {
					return
				}
			}
		}) {
			r := rs[t][p]
			o := electionOutcome{Topic: t, Partition: p, Leader: -1, Result: "elected"}
			if r.Err != nil {
				o.Result = errName(r.Err)
			}
			if mp, ok := md.Topics[t].Partitions[p]; ok {
				o.Leader = mp.Leader
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// planElections says, from Metadata alone, what ElectLeaders would do:
// Metadata lists only unfenced brokers, which are the ones that may lead.
func planElections(ctx context.Context, adm *kadm.Client, how kadm.ElectLeadersHow, topic string, set kadm.TopicsSet) ([]electionOutcome, error) {
	var md kadm.Metadata
	var err error
	if topic != "" {
		md, err = adm.Metadata(ctx, topic)
	} else {
		md, err = adm.Metadata(ctx)
	}
	if err != nil {
		return nil, err
	}
	live := func(id int32) bool { return slices.Contains(md.Brokers.NodeIDs(), id) }
	var out []electionOutcome
	for _, name := range md.Topics.Names() {
		for _, p := range md.Topics[name].Partitions.Sorted() {
			if set != nil && !hasPartition(set, name, p.Partition) {
				continue
			}
			o := electionOutcome{Topic: name, Partition: p.Partition, Leader: p.Leader}
			valid := func(id int32) bool { return slices.Contains(p.ISR, id) && live(id) }
			switch {
			case how == kadm.ElectPreferredReplica && len(p.Replicas) > 0 && p.Leader == p.Replicas[0],
				how == kadm.ElectLiveReplica && p.Leader >= 0:
				if set == nil {
					continue // as ElectLeaders for every partition, which leaves these out
				}
				o.Result = errName(kerr.ElectionNotNeeded)
			case how == kadm.ElectPreferredReplica && len(p.Replicas) > 0 && valid(p.Replicas[0]):
				o.Leader, o.Result = p.Replicas[0], "would elect"
			case how == kadm.ElectPreferredReplica:
				o.Result = errName(kerr.PreferredLeaderNotAvailable)
			default:
				o.Leader, o.Result = -1, errName(kerr.EligibleLeadersNotAvailable)
				for _, r := range p.Replicas {
					if valid(r) {
						o.Leader, o.Result = r, "would elect"
						break
					}
				}
				if o.Leader < 0 {
					for _, r := range p.Replicas {
						if live(r) {
							o.Leader, o.Result = r, "would elect (unclean: outside the ISR)"
							break
						}
					}
				}
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func hasPartition(set kadm.TopicsSet, topic string, p int32) bool {
	_, ok := set[topic][p]
	return ok
}

// clusterQuorum is the quorum part of 'cluster describe': leader, voters,
// observers and their lag. It is nil when the cluster does not answer
// DescribeQuorum (a Kafka broker older than 3.3), which leaves the rest of
// the description intact.
func clusterQuorum(ctx context.Context, cl *kgo.Client) *quorumSummary {
	q, err := describeQuorum(ctx, cl)
	if err != nil {
		return nil
	}
	return q
}

func (a *app) printClusterQuorum(q *quorumSummary) error {
	if q == nil {
		fmt.Fprintln(a.stdout, "\nQuorum: not described (DescribeQuorum failed)")
		return nil
	}
	fmt.Fprintln(a.stdout)
	return a.printQuorum(q)
}
