package cli

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (a *app) topicCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics",
		Args:  cobra.ArbitraryArgs,
		RunE:  helpOrUnknown,
	}
	cmd.AddCommand(a.topicCreateCmd(), a.topicListCmd(), a.topicDescribeCmd(),
		a.topicDeleteCmd(), a.topicAlterConfigCmd(), a.topicAddPartitionsCmd())
	return cmd
}

func (a *app) topicCreateCmd() *cobra.Command {
	var (
		partitions   int32
		replicas     int16
		configs      []string
		validateOnly bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Example: `  gregor topic create orders -p 6 -c retention.ms=86400000 -c cleanup.policy=compact
  gregor topic create orders --validate-only`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			kv, err := parseKV("-c", configs)
			if err != nil {
				return err
			}
			cfgs := make(map[string]*string, len(kv))
			for k, v := range kv {
				cfgs[k] = &v
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var resp kadm.CreateTopicResponse
			if validateOnly {
				rs, err := adm.ValidateCreateTopics(ctx, partitions, replicas, cfgs, name)
				if err != nil {
					return failed("create topic "+name, err)
				}
				resp, err = rs.On(name, nil)
				if err != nil {
					return failed("create topic "+name, err)
				}
			} else {
				resp, err = adm.CreateTopic(ctx, partitions, replicas, cfgs, name)
			}
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				return &opError{what: "create topic " + name, err: err, brokerMsg: resp.ErrMessage}
			}
			if a.json {
				return a.writeJSON(map[string]any{
					"topic":              name,
					"topic_id":           topicIDString(resp.ID),
					"partitions":         resp.NumPartitions,
					"replication_factor": resp.ReplicationFactor,
					"validate_only":      validateOnly,
				})
			}
			verb := "created"
			if validateOnly {
				verb = "validated (not created)"
			}
			fmt.Fprintf(a.stdout, "%s topic %s (partitions %d, replication factor %d)\n", verb, name, resp.NumPartitions, resp.ReplicationFactor)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Int32VarP(&partitions, "partitions", "p", -1, "number of partitions (-1: broker default num.partitions)")
	fl.Int16VarP(&replicas, "replicas", "r", -1, "replication factor (-1: broker default default.replication.factor)")
	fl.StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")
	fl.BoolVar(&validateOnly, "validate-only", false, "ask the broker to validate the request without creating the topic")
	return cmd
}

type topicSummary struct {
	Topic             string `json:"topic"`
	TopicID           string `json:"topic_id,omitempty"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

func (a *app) topicListCmd() *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics with their partition count and replication factor",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var tds kadm.TopicDetails
			if internal {
				tds, err = adm.ListTopicsWithInternal(ctx)
			} else {
				tds, err = adm.ListTopics(ctx)
			}
			if err != nil {
				return failed("list topics", err)
			}
			list := []topicSummary{}
			for _, td := range tds.Sorted() {
				if td.Err != nil {
					return failed("list topic "+td.Topic, td.Err)
				}
				if !internal && strings.HasPrefix(td.Topic, "__") {
					continue
				}
				list = append(list, topicSummary{
					Topic:             td.Topic,
					TopicID:           topicIDString(td.ID),
					Partitions:        len(td.Partitions),
					ReplicationFactor: td.Partitions.NumReplicas(),
					Internal:          td.IsInternal,
				})
			}
			if a.json {
				return a.writeJSON(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Topic, t.Partitions, t.ReplicationFactor)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&internal, "internal", false, "include internal topics (__consumer_offsets, ...)")
	return cmd
}

type partitionDescription struct {
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	LogStartOffset int64   `json:"log_start_offset"`
	LogEndOffset   int64   `json:"log_end_offset"`
	Error          string  `json:"error,omitempty"`
}

type configDescription struct {
	Name      string  `json:"name"`
	Value     *string `json:"value"`
	Source    string  `json:"source"`
	Sensitive bool    `json:"sensitive,omitempty"`
}

type topicDescription struct {
	topicSummary
	PartitionDetails []partitionDescription `json:"partition_details"`
	Configs          []configDescription    `json:"configs"` // those not at their default
}

func (a *app) topicDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe NAME...",
		Short: "Describe topics: id, partitions (leader, replicas, ISR, offsets) and non-default configs",
		Long: `Describe topics: the topic id; for each partition its leader, replicas,
in-sync replicas, log start offset and log end offset (high watermark); and
every config whose source is not DEFAULT_CONFIG, with its source (for example
DYNAMIC_TOPIC_CONFIG for a topic override, STATIC_BROKER_CONFIG for a broker
property that changes the topic's default).`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, names []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			tds, err := adm.ListTopics(ctx, names...)
			if err != nil {
				return failed("describe topics", err)
			}
			for _, name := range names {
				td, ok := tds[name]
				if !ok {
					return failed("describe topic "+name, fmt.Errorf("topic missing from metadata response"))
				}
				if td.Err != nil {
					return failed("describe topic "+name, td.Err)
				}
			}
			starts, err := adm.ListStartOffsets(ctx, names...)
			if err != nil {
				return failed("list start offsets", err)
			}
			ends, err := adm.ListEndOffsets(ctx, names...)
			if err != nil {
				return failed("list end offsets", err)
			}
			rcs, err := adm.DescribeTopicConfigs(ctx, names...)
			if err != nil {
				return failed("describe topic configs", err)
			}
			var out []topicDescription
			for _, name := range names {
				td := tds[name]
				d := topicDescription{
					topicSummary: topicSummary{
						Topic:             name,
						TopicID:           topicIDString(td.ID),
						Partitions:        len(td.Partitions),
						ReplicationFactor: td.Partitions.NumReplicas(),
						Internal:          td.IsInternal,
					},
					PartitionDetails: []partitionDescription{},
					Configs:          []configDescription{},
				}
				for _, pd := range td.Partitions.Sorted() {
					p := partitionDescription{
						Partition: pd.Partition, Leader: pd.Leader, LeaderEpoch: pd.LeaderEpoch,
						Replicas: nonNil(pd.Replicas), ISR: nonNil(pd.ISR),
						LogStartOffset: -1, LogEndOffset: -1,
					}
					if pd.Err != nil {
						p.Error = errName(pd.Err)
					}
					if o, ok := starts.Lookup(name, pd.Partition); ok && o.Err == nil {
						p.LogStartOffset = o.Offset
					}
					if o, ok := ends.Lookup(name, pd.Partition); ok && o.Err == nil {
						p.LogEndOffset = o.Offset
					}
					d.PartitionDetails = append(d.PartitionDetails, p)
				}
				rc, err := rcs.On(name, nil)
				if err == nil {
					err = rc.Err
				}
				if err != nil {
					return &opError{what: "describe configs of " + name, err: err, brokerMsg: rc.ErrMessage}
				}
				for _, c := range rc.Configs {
					if c.Source == kmsg.ConfigSourceDefaultConfig {
						continue
					}
					d.Configs = append(d.Configs, configDescription{Name: c.Key, Value: c.Value, Source: c.Source.String(), Sensitive: c.Sensitive})
				}
				sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Name < d.Configs[j].Name })
				out = append(out, d)
			}
			if a.json {
				return a.writeJSON(out)
			}
			return a.printDescriptions(out)
		},
	}
	return cmd
}

func (a *app) printDescriptions(ds []topicDescription) error {
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "Topic: %s\tTopicId: %s\tPartitions: %d\tReplicationFactor: %d\n", d.Topic, d.TopicID, d.Partitions, d.ReplicationFactor)
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tLOG-START\tLOG-END\tERROR")
		for _, p := range d.PartitionDetails {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\n", p.Partition, p.Leader, p.LeaderEpoch,
				joinIDs(p.Replicas), joinIDs(p.ISR), p.LogStartOffset, p.LogEndOffset, p.Error)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(d.Configs) == 0 {
			fmt.Fprintln(a.stdout, "Configs: all defaults")
			continue
		}
		fmt.Fprintln(a.stdout, "Configs:")
		tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KEY\tVALUE\tSOURCE")
		for _, c := range d.Configs {
			v := "<null>"
			if c.Sensitive {
				v = "<sensitive>"
			} else if c.Value != nil {
				v = *c.Value
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, v, c.Source)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) topicDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete topics and all their data",
		Args:    usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, names []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rs, err := adm.DeleteTopics(ctx, names...)
			if err != nil {
				return failed("delete topics", err)
			}
			type result struct {
				Topic   string `json:"topic"`
				Deleted bool   `json:"deleted"`
				Error   string `json:"error,omitempty"`
			}
			var (
				results []result
				anyFail bool
			)
			for _, name := range names {
				r, ok := rs[name]
				switch {
				case !ok:
					a.printError(failed("delete topic "+name, fmt.Errorf("topic missing from response")))
					anyFail = true
					results = append(results, result{Topic: name, Error: "MISSING_FROM_RESPONSE"})
				case r.Err != nil:
					a.printError(&opError{what: "delete topic " + name, err: r.Err, brokerMsg: r.ErrMessage})
					anyFail = true
					results = append(results, result{Topic: name, Error: errName(r.Err)})
				default:
					results = append(results, result{Topic: name, Deleted: true})
					if !a.json {
						fmt.Fprintf(a.stdout, "deleted topic %s\n", name)
					}
				}
			}
			if a.json {
				if err := a.writeJSON(results); err != nil {
					return err
				}
			}
			if anyFail {
				return errReported
			}
			return nil
		},
	}
}

func (a *app) topicAlterConfigCmd() *cobra.Command {
	var (
		sets    []string
		deletes []string
	)
	cmd := &cobra.Command{
		Use:   "alter-config NAME",
		Short: "Set or delete topic config overrides (IncrementalAlterConfigs)",
		Example: `  gregor topic alter-config orders -c retention.ms=3600000
  gregor topic alter-config orders --delete retention.ms`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			kv, err := parseKV("-c", sets)
			if err != nil {
				return err
			}
			if len(kv) == 0 && len(deletes) == 0 {
				return usageErrorf("nothing to change: give -c key=value or --delete key")
			}
			var alters []kadm.AlterConfig
			for _, k := range sortedKeys(kv) {
				v := kv[k]
				alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			}
			for _, k := range deletes {
				alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rs, err := adm.AlterTopicConfigs(ctx, alters, name)
			if err != nil {
				return failed("alter configs of "+name, err)
			}
			r, err := rs.On(name, nil)
			if err == nil {
				err = r.Err
			}
			if err != nil {
				return &opError{what: "alter configs of " + name, err: err, brokerMsg: r.ErrMessage}
			}
			if a.json {
				return a.writeJSON(map[string]any{"topic": name, "set": kv, "deleted": nonNil(deletes)})
			}
			for _, k := range sortedKeys(kv) {
				fmt.Fprintf(a.stdout, "set %s=%s on topic %s\n", k, kv[k], name)
			}
			for _, k := range deletes {
				fmt.Fprintf(a.stdout, "deleted %s on topic %s (back to default)\n", k, name)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&sets, "config", "c", nil, "config to set, key=value (repeatable)")
	fl.StringArrayVar(&deletes, "delete", nil, "config override to remove (repeatable)")
	return cmd
}

func (a *app) topicAddPartitionsCmd() *cobra.Command {
	var total int
	cmd := &cobra.Command{
		Use:   "add-partitions NAME -p TOTAL",
		Short: "Increase a topic's partition count to TOTAL",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if total <= 0 {
				return usageErrorf("-p TOTAL is required and must be positive (the new total partition count)")
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rs, err := adm.UpdatePartitions(ctx, total, name)
			if err != nil {
				return failed("add partitions to "+name, err)
			}
			r, err := rs.On(name, nil)
			if err == nil {
				err = r.Err
			}
			if err != nil {
				return &opError{what: "add partitions to " + name, err: err, brokerMsg: r.ErrMessage}
			}
			if a.json {
				return a.writeJSON(map[string]any{"topic": name, "partitions": total})
			}
			fmt.Fprintf(a.stdout, "topic %s now has %d partitions\n", name, total)
			return nil
		},
	}
	cmd.Flags().IntVarP(&total, "partitions", "p", 0, "new total number of partitions")
	return cmd
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
