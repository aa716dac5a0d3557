package cli

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func (a *app) quotaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "List and change client quotas (producer_byte_rate, consumer_byte_rate, ...)",
		Args:  cobra.ArbitraryArgs,
		RunE:  helpOrUnknown,
	}
	cmd.AddCommand(a.quotaListCmd(), a.quotaAlterCmd())
	return cmd
}

// quotaEntityFlags name a quota entity as kafka-configs does: a user, a
// client id, both, or an IP, each by name or as the default.
type quotaEntityFlags struct {
	user, clientID, ip                    string
	userDefault, clientDefault, ipDefault bool
}

func (f *quotaEntityFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "user (principal) name")
	fl.BoolVar(&f.userDefault, "user-default", false, "the default of every user")
	fl.StringVar(&f.clientID, "client-id", "", "client id")
	fl.BoolVar(&f.clientDefault, "client-default", false, "the default of every client id")
	fl.StringVar(&f.ip, "ip", "", "client IP address")
	fl.BoolVar(&f.ipDefault, "ip-default", false, "the default of every IP address")
}

// parts lists the entity's components in kafka-configs' order.
func (f *quotaEntityFlags) parts() (kadm.ClientQuotaEntity, error) {
	var e kadm.ClientQuotaEntity
	for _, p := range []struct {
		typ, name string
		def       bool
	}{{"user", f.user, f.userDefault}, {"client-id", f.clientID, f.clientDefault}, {"ip", f.ip, f.ipDefault}} {
		switch {
		case p.name != "" && p.def:
			return nil, usageErrorf("give a %s name or --%s-default, not both", p.typ, map[string]string{"user": "user", "client-id": "client", "ip": "ip"}[p.typ])
		case p.name != "":
			name := p.name
			e = append(e, kadm.ClientQuotaEntityComponent{Type: p.typ, Name: &name})
		case p.def:
			e = append(e, kadm.ClientQuotaEntityComponent{Type: p.typ})
		}
	}
	return e, nil
}

func (a *app) quotaListCmd() *cobra.Command {
	var f quotaEntityFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List client quotas (DescribeClientQuotas), all or those of one entity",
		Example: `  gregor quota list
  gregor quota list --client-id billing`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			entity, err := f.parts()
			if err != nil {
				return err
			}
			var filter []kadm.DescribeClientQuotaComponent
			for _, p := range entity {
				c := kadm.DescribeClientQuotaComponent{Type: p.Type, MatchName: p.Name, MatchType: 1}
				if p.Name != nil {
					c.MatchType = 0
				}
				filter = append(filter, c)
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			described, err := adm.DescribeClientQuotas(ctx, len(filter) > 0, filter)
			if err != nil {
				return failed("describe client quotas", err)
			}
			if a.json {
				out := []map[string]any{}
				for _, q := range described {
					vals := map[string]float64{}
					for _, v := range q.Values {
						vals[v.Key] = v.Value
					}
					out = append(out, map[string]any{"entity": q.Entity.String(), "quotas": vals})
				}
				return a.writeJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENTITY\tQUOTA\tVALUE")
			for _, q := range described {
				for _, v := range q.Values {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", q.Entity, v.Key, strconv.FormatFloat(v.Value, 'f', -1, 64))
				}
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	return cmd
}

func (a *app) quotaAlterCmd() *cobra.Command {
	var (
		f       quotaEntityFlags
		sets    []string
		deletes []string
	)
	cmd := &cobra.Command{
		Use:   "alter",
		Short: "Set or remove client quotas of one entity (AlterClientQuotas)",
		Example: `  gregor quota alter --client-id billing -c producer_byte_rate=1048576 -c consumer_byte_rate=2097152
  gregor quota alter --client-default -c producer_byte_rate=10485760
  gregor quota alter --client-id billing --delete producer_byte_rate`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			entity, err := f.parts()
			if err != nil {
				return err
			}
			if len(entity) == 0 {
				return usageErrorf("name an entity: --user, --client-id, --ip or their --*-default")
			}
			kv, err := parseKV("-c", sets)
			if err != nil {
				return err
			}
			if len(kv) == 0 && len(deletes) == 0 {
				return usageErrorf("nothing to change: give -c key=value or --delete key")
			}
			var ops []kadm.AlterClientQuotaOp
			set := map[string]float64{}
			for _, k := range sortedKeys(kv) {
				v, err := strconv.ParseFloat(kv[k], 64)
				if err != nil {
					return usageErrorf("-c %s=%s: not a number", k, kv[k])
				}
				set[k] = v
				ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Value: v})
			}
			for _, k := range deletes {
				ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Remove: true})
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rs, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: entity, Ops: ops}})
			if err != nil {
				return failed("alter client quotas of "+entity.String(), err)
			}
			if len(rs) != 1 {
				return failed("alter client quotas of "+entity.String(), fmt.Errorf("%d results for one entity", len(rs)))
			}
			if rs[0].Err != nil {
				return &opError{what: "alter client quotas of " + entity.String(), err: rs[0].Err, brokerMsg: rs[0].ErrMessage}
			}
			if a.json {
				return a.writeJSON(map[string]any{"entity": entity.String(), "set": set, "deleted": nonNil(deletes)})
			}
			for _, k := range sortedKeys(kv) {
				fmt.Fprintf(a.stdout, "set %s=%s for %s\n", k, kv[k], entity)
			}
			for _, k := range deletes {
				fmt.Fprintf(a.stdout, "removed %s for %s\n", k, entity)
			}
			return nil
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringArrayVarP(&sets, "config", "c", nil, "quota to set, key=value (repeatable)")
	fl.StringArrayVar(&deletes, "delete", nil, "quota to remove (repeatable)")
	return cmd
}
