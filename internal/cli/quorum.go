package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The metadata quorum (KIP-853), as kafka-metadata-quorum shows and changes
// it: DescribeQuorum, AddRaftVoter and RemoveRaftVoter, which any broker
// forwards to the active controller.

func (a *app) quorumCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quorum",
		Short: "Show and change the metadata quorum: its leader, voters and observers",
	}
	cmd.AddCommand(a.quorumDescribeCmd(), a.quorumAddVoterCmd(), a.quorumRemoveVoterCmd())
	return cmd
}

type quorumMember struct {
	NodeID       int32  `json:"node_id"`
	LogEndOffset int64  `json:"log_end_offset"`
	Lag          int64  `json:"lag"`
	LastFetch    *int64 `json:"last_fetch_ms,omitempty"`     // unix ms
	LastCaughtUp *int64 `json:"last_caught_up_ms,omitempty"` // unix ms
	Endpoint     string `json:"endpoint,omitempty"`
}

type quorumSummary struct {
	LeaderID      int32          `json:"leader_id"`
	LeaderEpoch   int32          `json:"leader_epoch"`
	HighWatermark int64          `json:"high_watermark"`
	MaxLag        int64          `json:"max_follower_lag"`
	Voters        []quorumMember `json:"voters"`
	Observers     []quorumMember `json:"observers"`
}

// describeQuorum asks the cluster for the quorum (DescribeQuorum v2).
func describeQuorum(ctx context.Context, cl *kgo.Client) (*quorumSummary, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("DescribeQuorum answered %d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return nil, err
	}
	endpoints := map[int32]string{}
	for _, n := range resp.Nodes {
		for _, l := range n.Listeners {
			endpoints[n.NodeID] = net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
		}
	}
	var leaderEnd int64
	for _, v := range p.CurrentVoters {
		if v.ReplicaID == p.LeaderID {
			leaderEnd = v.LogEndOffset
		}
	}
	s := &quorumSummary{LeaderID: p.LeaderID, LeaderEpoch: p.LeaderEpoch, HighWatermark: p.HighWatermark,
		Voters: []quorumMember{}, Observers: []quorumMember{}}
	member := func(r kmsg.DescribeQuorumResponseTopicPartitionReplicaState) quorumMember {
		m := quorumMember{NodeID: r.ReplicaID, LogEndOffset: r.LogEndOffset, Lag: -1, Endpoint: endpoints[r.ReplicaID]}
		if r.LogEndOffset >= 0 {
			m.Lag = max(leaderEnd-r.LogEndOffset, 0)
			s.MaxLag = max(s.MaxLag, m.Lag)
		}
		if r.LastFetchTimestamp >= 0 {
			m.LastFetch = &r.LastFetchTimestamp
		}
		if r.LastCaughtUpTimestamp >= 0 {
			m.LastCaughtUp = &r.LastCaughtUpTimestamp
		}
		return m
	}
	for _, v := range p.CurrentVoters {
		s.Voters = append(s.Voters, member(v))
	}
	for _, o := range p.Observers {
		s.Observers = append(s.Observers, member(o))
	}
	return s, nil
}

// printQuorum prints the quorum part of 'cluster describe' and 'quorum
// describe'.
func (a *app) printQuorum(s *quorumSummary) error {
	fmt.Fprintf(a.stdout, "Quorum leader: %d\tEpoch: %d\tHigh watermark: %d\tMax follower lag: %d\n",
		s.LeaderID, s.LeaderEpoch, s.HighWatermark, s.MaxLag)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tLOG-END\tLAG\tLAST-FETCH\tLAST-CAUGHT-UP")
	now := time.Now()
	ago := func(ms *int64) string {
		if ms == nil {
			return "-"
		}
		return now.Sub(time.UnixMilli(*ms)).Round(time.Millisecond).String() + " ago"
	}
	row := func(m quorumMember, status string) {
		end, lag := "-", "-"
		if m.LogEndOffset >= 0 {
			end, lag = strconv.FormatInt(m.LogEndOffset, 10), strconv.FormatInt(m.Lag, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.NodeID, status, end, lag, ago(m.LastFetch), ago(m.LastCaughtUp))
	}
	for _, v := range s.Voters {
		status := "voter"
		if v.NodeID == s.LeaderID {
			status = "leader"
		}
		row(v, status)
	}
	for _, o := range s.Observers {
		row(o, "observer")
	}
	return tw.Flush()
}

func (a *app) quorumDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Print the quorum leader and epoch, the high watermark, and each voter and observer with its log end and lag",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.newClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			defer cancel()
			s, err := describeQuorum(ctx, cl)
			if err != nil {
				return failed("describe quorum", err)
			}
			if a.json {
				return a.writeJSON(s)
			}
			return a.printQuorum(s)
		},
	}
}

func (a *app) quorumAddVoterCmd() *cobra.Command {
	var (
		id   int32
		addr string
	)
	cmd := &cobra.Command{
		Use:   "add-voter",
		Short: "Add a running controller to the voters (it must not be in the quorum yet)",
		Long: "Add a running controller to the voters (KIP-853 AddRaftVoter). Start the new node with\n" +
			"process.roles=controller (or broker,controller) and controller.quorum.bootstrap.servers naming\n" +
			"the quorum, then add it with its node id and controller listener.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, portStr, err := net.SplitHostPort(addr)
			port, perr := strconv.ParseUint(portStr, 10, 16)
			if err != nil || perr != nil || host == "" || port == 0 {
				return usageErrorf("--controller-addr %q: want host:port", addr)
			}
			if id < 0 {
				return usageErrorf("--id is required")
			}
			req := kmsg.NewPtrAddRaftVoterRequest()
			req.VoterID = id
			req.TimeoutMillis = int32(min(a.timeout.Milliseconds(), 1<<31-1))
			l := kmsg.NewAddRaftVoterRequestListener()
			l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(port)
			req.Listeners = append(req.Listeners, l)
			return a.quorumChange(cmd.Context(), "add voter", func(ctx context.Context, cl *kgo.Client) (int16, *string, error) {
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					return 0, nil, err
				}
				return resp.ErrorCode, resp.ErrorMessage, nil
			}, fmt.Sprintf("added voter %d at %s\n", id, addr))
		},
	}
	cmd.Flags().Int32Var(&id, "id", -1, "node id of the new voter")
	cmd.Flags().StringVar(&addr, "controller-addr", "", "the new voter's controller listener, host:port")
	return cmd
}

func (a *app) quorumRemoveVoterCmd() *cobra.Command {
	var id int32
	cmd := &cobra.Command{
		Use:   "remove-voter",
		Short: "Remove a voter from the quorum (a lost or retired controller)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id < 0 {
				return usageErrorf("--id is required")
			}
			req := kmsg.NewPtrRemoveRaftVoterRequest()
			req.VoterID = id
			return a.quorumChange(cmd.Context(), "remove voter", func(ctx context.Context, cl *kgo.Client) (int16, *string, error) {
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					return 0, nil, err
				}
				return resp.ErrorCode, resp.ErrorMessage, nil
			}, fmt.Sprintf("removed voter %d\n", id))
		},
	}
	cmd.Flags().Int32Var(&id, "id", -1, "node id of the voter to remove")
	return cmd
}

func (a *app) quorumChange(ctx context.Context, what string, send func(context.Context, *kgo.Client) (int16, *string, error), ok string) error {
	cl, err := a.newClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	code, msg, err := send(ctx, cl)
	if err != nil {
		return failed(what, err)
	}
	if err := kerr.ErrorForCode(code); err != nil {
		oe := &opError{what: what, err: err}
		if msg != nil {
			oe.brokerMsg = *msg
		}
		return oe
	}
	if a.json {
		return a.writeJSON(map[string]string{"result": ok})
	}
	fmt.Fprint(a.stdout, ok)
	return nil
}
