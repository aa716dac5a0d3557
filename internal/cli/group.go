package cli

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func (a *app) groupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, reset and delete consumer groups",
	}
	cmd.AddCommand(a.groupListCmd(), a.groupDescribeCmd(), a.groupResetCmd(), a.groupDeleteCmd())
	return cmd
}

func (a *app) groupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their state",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			groups, err := adm.ListGroups(ctx)
			if err != nil {
				return failed("list groups", err)
			}
			sorted := groups.Sorted()
			if a.json {
				return a.writeJSON(sorted)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL TYPE")
			for _, g := range sorted {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Group, g.State, g.ProtocolType)
			}
			return tw.Flush()
		},
	}
}

func (a *app) groupDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, assignments, committed offsets and lag",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			group := args[0]
			// A KIP-848 group answers ConsumerGroupDescribe; a classic
			// one (or an unknown one) DescribeGroups.
			var described any
			var header string
			type row struct{ id, client, host, parts string }
			var rows []row
			var gl kadm.DescribedGroupLag
			if cgs, err := adm.DescribeConsumerGroups(ctx, group); err == nil && cgs[group].Err == nil {
				d := cgs[group]
				described = d
				if gl.Lag, err = consumerGroupLag(ctx, adm, d); err != nil {
					return failed("group lag", err)
				}
				header = fmt.Sprintf("Group %s: state %s, consumer protocol (KIP-848), assignor %s, epoch %d, %d members",
					d.Group, d.State, d.AssignorName, d.Epoch, len(d.Members))
				for _, m := range d.Members {
					var parts []string
					m.Assignment.EachPartitions(func(t string, ps []int32) {
						ps = append([]int32(nil), ps...)
						sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
						parts = append(parts, fmt.Sprintf("%s%v", t, ps))
					})
					sort.Strings(parts)
					rows = append(rows, row{m.MemberID, m.ClientID, m.ClientHost, fmt.Sprint(parts)})
				}
			} else {
				ds, err := adm.DescribeGroups(ctx, group)
				if err != nil {
					return failed("describe group", err)
				}
				d := ds[group]
				if d.Err != nil {
					return failed("describe group "+group, d.Err)
				}
				described = d
				lag, err := adm.Lag(ctx, group)
				if err != nil {
					return failed("group lag", err)
				}
				gl = lag[group]
				header = fmt.Sprintf("Group %s: state %s, protocol %s/%s, %d members",
					d.Group, d.State, d.ProtocolType, d.Protocol, len(d.Members))
				for _, m := range d.Members {
					var parts []string
					if ca, ok := m.Assigned.AsConsumer(); ok {
						for _, t := range ca.Topics {
							ps := append([]int32(nil), t.Partitions...)
							sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
							parts = append(parts, fmt.Sprintf("%s%v", t.Topic, ps))
						}
					}
					rows = append(rows, row{m.MemberID, m.ClientID, m.ClientHost, fmt.Sprint(parts)})
				}
			}
			if a.json {
				return a.writeJSON(map[string]any{"group": described, "lag": gl.Lag.Sorted(), "total_lag": gl.Lag.Total()})
			}
			fmt.Fprintln(a.stdout, header)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tCLIENT ID\tHOST\tPARTITIONS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.id, r.client, r.host, r.parts)
			}
			tw.Flush()
			tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tLOG END\tLAG\tMEMBER")
			for _, l := range gl.Lag.Sorted() {
				committed := "-"
				if l.Commit.At >= 0 {
					committed = fmt.Sprint(l.Commit.At)
				}
				member := "-"
				if l.Member != nil {
					member = l.Member.MemberID
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", l.Topic, l.Partition, committed, l.End.Offset, l.Lag, member)
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "Total lag: %d\n", gl.Lag.Total())
			return nil
		},
	}
}

func (a *app) groupResetCmd() *cobra.Command {
	var topic, datetime string
	var earliest, latest, execute bool
	var toOffset, shift int64
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic T (--to-earliest|--to-latest|--to-offset N|--to-datetime T|--shift-by N)",
		Short: "Move a group's committed offsets (dry run unless --execute)",
		Long: `Move a group's committed offsets for a topic. Prints the plan; --execute
commits it. Refused while the group has members.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			modes := 0
			for _, n := range []string{"to-earliest", "to-latest", "to-offset", "to-datetime", "shift-by"} {
				if fl.Changed(n) {
					modes++
				}
			}
			if modes != 1 || topic == "" {
				return usageErrorf("give --topic and exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
			}
			group := args[0]
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ds, err := adm.DescribeGroups(ctx, group)
			if err != nil {
				return failed("describe group", err)
			}
			if d := ds[group]; len(d.Members) > 0 {
				return fmt.Errorf("group %s has %d active members (state %s): stop them first", group, len(d.Members), d.State)
			}
			if cgs, err := adm.DescribeConsumerGroups(ctx, group); err == nil {
				if d := cgs[group]; d.Err == nil && len(d.Members) > 0 {
					return fmt.Errorf("group %s has %d active members (state %s): stop them first", group, len(d.Members), d.State)
				}
			}
			starts, err := adm.ListStartOffsets(ctx, topic)
			if err != nil {
				return failed("list start offsets", err)
			}
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				return failed("list end offsets", err)
			}
			committed, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				return failed("fetch offsets", err)
			}
			var byTime kadm.ListedOffsets
			if datetime != "" {
				ms, err := parseTimestamp(datetime)
				if err != nil {
					return err
				}
				if byTime, err = adm.ListOffsetsAfterMilli(ctx, ms, topic); err != nil {
					return failed("list offsets by time", err)
				}
			}
			plan := kadm.Offsets{}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW")
			var perr error
			ends.Each(func(e kadm.ListedOffset) {
				if e.Err != nil {
					perr = e.Err
					return
				}
				lo := int64(0)
				if s, ok := starts.Lookup(e.Topic, e.Partition); ok {
					lo = s.Offset
				}
				cur := int64(-1)
				if c, ok := committed.Lookup(e.Topic, e.Partition); ok {
					cur = c.At
				}
				var to int64
				switch {
				case earliest:
					to = lo
				case latest:
					to = e.Offset
				case fl.Changed("to-offset"):
					to = toOffset
				case datetime != "":
					to = e.Offset
					if o, ok := byTime.Lookup(e.Topic, e.Partition); ok && o.Offset >= 0 {
						to = o.Offset
					}
				default:
					base := cur
					if base < 0 {
						base = lo
					}
					to = base + shift
				}
				to = max(lo, min(to, e.Offset))
				plan.Add(kadm.Offset{Topic: e.Topic, Partition: e.Partition, At: to, LeaderEpoch: -1})
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", e.Topic, e.Partition, cur, to)
			})
			if perr != nil {
				return failed("list offsets", perr)
			}
			tw.Flush()
			if !execute {
				fmt.Fprintln(a.stdout, "Dry run: nothing changed; add --execute to commit these offsets.")
				return nil
			}
			resp, err := adm.CommitOffsets(ctx, group, plan)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return failed("commit offsets", err)
			}
			fmt.Fprintln(a.stdout, "Offsets committed.")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&topic, "topic", "", "topic whose offsets to reset")
	fl.BoolVar(&earliest, "to-earliest", false, "reset to the log start offset")
	fl.BoolVar(&latest, "to-latest", false, "reset to the log end offset")
	fl.Int64Var(&toOffset, "to-offset", 0, "reset to this offset (clamped to the log)")
	fl.StringVar(&datetime, "to-datetime", "", "reset to the first record at or after this time (unix ms or RFC3339)")
	fl.Int64Var(&shift, "shift-by", 0, "move the committed offset by N (negative: back)")
	fl.BoolVar(&execute, "execute", false, "commit the plan instead of printing it")
	return cmd
}

func (a *app) groupDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete an empty group and its committed offsets",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := adm.DeleteGroup(ctx, args[0])
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				return failed("delete group "+args[0], err)
			}
			fmt.Fprintf(a.stdout, "Deleted group %s.\n", args[0])
			return nil
		},
	}
}

// consumerGroupLag is kadm's Lag for a KIP-848 group, which DescribeGroups
// (v6, as Kafka 4's) answers GROUP_ID_NOT_FOUND: the lag of every
// partition the group committed and of every partition a member holds,
// which counts from the log start until it is committed, as kadm counts it.
func consumerGroupLag(ctx context.Context, adm *kadm.Client, d kadm.DescribedConsumerGroup) (kadm.GroupLag, error) {
	committed, err := adm.FetchOffsets(ctx, d.Group)
	if err != nil {
		return nil, err
	}
	holder := map[string]map[int32]*kadm.DescribedGroupMember{}
	for _, m := range d.Members {
		dm := &kadm.DescribedGroupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		m.Assignment.EachPartitions(func(t string, ps []int32) {
			if holder[t] == nil {
				holder[t] = map[int32]*kadm.DescribedGroupMember{}
			}
			if committed[t] == nil {
				committed[t] = map[int32]kadm.OffsetResponse{}
			}
			for _, p := range ps {
				holder[t][p] = dm
				if _, ok := committed[t][p]; !ok {
					committed[t][p] = kadm.OffsetResponse{Offset: kadm.Offset{Topic: t, Partition: p, At: -1}}
				}
			}
		})
	}
	topics := make([]string, 0, len(committed))
	for t := range committed {
		topics = append(topics, t)
	}
	var starts, ends kadm.ListedOffsets
	if len(topics) > 0 {
		if starts, err = adm.ListStartOffsets(ctx, topics...); err != nil {
			return nil, err
		}
		if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
			return nil, err
		}
	}
	lag := kadm.CalculateGroupLagWithStartOffsets(kadm.DescribedGroup{Group: d.Group, State: "Empty"}, committed, starts, ends)
	for t, ps := range lag {
		for p, l := range ps {
			l.Member = holder[t][p]
			ps[p] = l
		}
	}
	return lag, nil
}
