package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// sasl is the mechanism of the --sasl-* flags.
func (a *app) sasl() (sasl.Mechanism, error) {
	pass := a.saslPassword
	if pass == "" {
		pass = os.Getenv("GREGOR_SASL_PASSWORD")
	}
	if a.saslUser == "" {
		return nil, usageErrorf("--sasl-mechanism needs --sasl-user")
	}
	switch strings.ToUpper(a.saslMechanism) {
	case "PLAIN":
		return plain.Auth{User: a.saslUser, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: a.saslUser, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: a.saslUser, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, usageErrorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", a.saslMechanism)
}

func scramMechanism(name string) (kadm.ScramMechanism, error) {
	switch strings.ToUpper(name) {
	case "SCRAM-SHA-256":
		return kadm.ScramSha256, nil
	case "SCRAM-SHA-512":
		return kadm.ScramSha512, nil
	}
	return 0, usageErrorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", name)
}

func (a *app) scramCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scram",
		Short: "List, set and delete users' SCRAM credentials (SASL/SCRAM logins)",
		Args:  cobra.ArbitraryArgs,
		RunE:  helpOrUnknown,
	}
	cmd.AddCommand(a.scramListCmd(), a.scramSetCmd(), a.scramDeleteCmd())
	return cmd
}

func (a *app) scramListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list [user...]",
		Short:   "List the users with SCRAM credentials (DescribeUserScramCredentials)",
		Example: "  gregor scram list\n  gregor scram list alice",
		RunE: func(cmd *cobra.Command, users []string) error {
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			described, err := adm.DescribeUserSCRAMs(ctx, users...)
			if err != nil {
				return failed("describe SCRAM credentials", err)
			}
			if a.json {
				out := map[string]any{}
				for _, u := range described.Sorted() {
					creds := map[string]int32{}
					for _, c := range u.CredInfos {
						creds[c.Mechanism.String()] = c.Iterations
					}
					entry := map[string]any{"credentials": creds}
					if u.Err != nil {
						entry["error"] = u.Err.Error()
					}
					out[u.User] = entry
				}
				return a.writeJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
			for _, u := range described.Sorted() {
				if u.Err != nil {
					fmt.Fprintf(tw, "%s\t-\t%v\n", u.User, u.Err)
				}
				for _, c := range u.CredInfos {
					fmt.Fprintf(tw, "%s\t%s\t%d\n", u.User, c.Mechanism, c.Iterations)
				}
			}
			return tw.Flush()
		},
	}
}

func (a *app) scramSetCmd() *cobra.Command {
	var (
		user, mechanism, password string
		iterations                int32
	)
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Create or change a user's SCRAM credential (AlterUserScramCredentials)",
		Long: `Create or change a user's SCRAM credential. The password is salted here and
only the salted form is sent; the broker keeps only keys derived from it.`,
		Example: "  gregor scram set --user alice --mechanism SCRAM-SHA-256 --password alice-secret",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			mech, err := scramMechanism(mechanism)
			if err != nil {
				return err
			}
			if user == "" || password == "" {
				return usageErrorf("give --user and --password")
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: mech, Iterations: iterations, Password: password}})
			if err == nil {
				err = res.Error()
			}
			if err != nil {
				return failed("set the SCRAM credential of "+user, err)
			}
			if a.json {
				return a.writeJSON(map[string]any{"user": user, "mechanism": mech.String(), "iterations": iterations})
			}
			fmt.Fprintf(a.stdout, "set the %s credential of %s (%d iterations)\n", mech, user, iterations)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&user, "user", "", "user name")
	fl.StringVar(&mechanism, "mechanism", "SCRAM-SHA-256", "SCRAM-SHA-256 or SCRAM-SHA-512")
	fl.StringVar(&password, "password", "", "the user's password")
	fl.Int32Var(&iterations, "iterations", 8192, "SCRAM iterations, 4096 to 16384")
	return cmd
}

func (a *app) scramDeleteCmd() *cobra.Command {
	var user, mechanism string
	cmd := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a user's SCRAM credential of one mechanism",
		Example: "  gregor scram delete --user alice --mechanism SCRAM-SHA-256",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			mech, err := scramMechanism(mechanism)
			if err != nil {
				return err
			}
			if user == "" {
				return usageErrorf("give --user")
			}
			adm, ctx, done, err := a.newAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: user, Mechanism: mech}}, nil)
			if err == nil {
				err = res.Error()
			}
			if err != nil {
				return failed("delete the SCRAM credential of "+user, err)
			}
			if a.json {
				return a.writeJSON(map[string]any{"user": user, "mechanism": mech.String(), "deleted": true})
			}
			fmt.Fprintf(a.stdout, "deleted the %s credential of %s\n", mech, user)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&user, "user", "", "user name")
	fl.StringVar(&mechanism, "mechanism", "SCRAM-SHA-256", "SCRAM-SHA-256 or SCRAM-SHA-512")
	return cmd
}
