package cli

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *app) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster: its id, controller and brokers",
	}
	cmd.AddCommand(a.clusterDescribeCmd())
	return cmd
}

type brokerSummary struct {
	NodeID int32   `json:"node_id"`
	Host   string  `json:"host"`
	Port   int32   `json:"port"`
	Rack   *string `json:"rack"`
}

type clusterSummary struct {
	ClusterID  string          `json:"cluster_id"`
	Controller int32           `json:"controller"`
	Brokers    []brokerSummary `json:"brokers"`
	Topics     int             `json:"topics"`
	Partitions int             `json:"partitions"`
	Quorum     *quorumSummary  `json:"quorum,omitempty"`
}

func (a *app) clusterDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Print the cluster id, the active controller, the brokers and topic totals",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			md, err := adm.Metadata(ctx)
			if err != nil {
				return failed("describe cluster", err)
			}
			s := clusterSummary{ClusterID: md.Cluster, Controller: md.Controller, Brokers: []brokerSummary{}}
			for _, b := range md.Brokers {
				s.Brokers = append(s.Brokers, brokerSummary{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
			}
			sort.Slice(s.Brokers, func(i, j int) bool { return s.Brokers[i].NodeID < s.Brokers[j].NodeID })
			for _, td := range md.Topics {
				s.Topics++
				s.Partitions += len(td.Partitions)
			}
			s.Quorum = a.clusterQuorum(ctx)
			if a.json {
				return a.writeJSON(s)
			}
			fmt.Fprintf(a.stdout, "Cluster: %s\tController: %d\tTopics: %d\tPartitions: %d\n",
				s.ClusterID, s.Controller, s.Topics, s.Partitions)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BROKER\tHOST\tPORT\tRACK")
			for _, b := range s.Brokers {
				rack := "-"
				if b.Rack != nil {
					rack = *b.Rack
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", b.NodeID, b.Host, b.Port, rack)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return a.printClusterQuorum(s.Quorum)
		},
	}
}

// clusterQuorum is the quorum part of 'cluster describe'; nil when the
// cluster does not answer DescribeQuorum (a Kafka broker older than 3.3, or
// none reachable), which leaves the rest of the description intact.
func (a *app) clusterQuorum(ctx context.Context) *quorumSummary {
	q, err := a.describeQuorum(ctx)
	if err != nil {
		return nil
	}
	return q
}

func (a *app) printClusterQuorum(q *quorumSummary) error {
	if q == nil {
		fmt.Fprintln(a.stdout, "Quorum: not described (DescribeQuorum failed)")
		return nil
	}
	fmt.Fprintln(a.stdout)
	return a.printQuorum(q)
}
