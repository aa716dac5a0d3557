package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exit codes returned by Main.
const (
	ExitOK    = 0
	ExitError = 1 // a command ran and failed (a Kafka error, a bad response, I/O)
	ExitUsage = 2 // bad flags or arguments; nothing was attempted
)

const defaultClientID = "gregor-cli"

// app is one invocation of the command line: its streams and global flags.
// Main builds a new one per call; nothing here is shared between calls.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	brokers  string
	json     bool
	timeout  time.Duration
	clientID string
	// saslMechanism, saslUser and saslPassword log the client in on a
	// SASL_PLAINTEXT listener.
	saslMechanism, saslUser, saslPassword string
}

// Main runs the gregor command line with args (without the program name) and
// returns the process exit code. It prints results to stdout and diagnostics
// and errors to stderr. Cancelling ctx (SIGINT, SIGTERM in cmd/gregor) stops a
// following consumer or a serving node cleanly with exit code 0.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	return a.report(cmd, err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gregor",
		Short: "Gregor: a Kafka-compatible event streaming broker and its command-line client",
		Long: `Gregor is a Kafka-compatible event streaming broker in one binary.

'gregor serve' runs a node; the other commands are clients that speak the
Kafka protocol to any broker given with -b/--brokers (gregor or Kafka).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          helpOrUnknown,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVarP(&a.brokers, "brokers", "b", "localhost:9092", "comma-separated bootstrap brokers (host:port)")
	pf.BoolVar(&a.json, "json", false, "machine-readable output: JSON instead of tables")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "time limit for each request to the cluster")
	pf.StringVar(&a.clientID, "client-id", defaultClientID, "Kafka client.id sent to the brokers")
	pf.StringVar(&a.saslMechanism, "sasl-mechanism", "", "log in with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (a SASL_PLAINTEXT listener)")
	pf.StringVar(&a.saslUser, "sasl-user", "", "SASL user name")
	pf.StringVar(&a.saslPassword, "sasl-password", "", "SASL password (or the environment variable GREGOR_SASL_PASSWORD)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	root.AddCommand(a.serveCmd(), a.topicCmd(), a.produceCmd(), a.consumeCmd(), a.benchCmd(), a.groupCmd(), a.clusterCmd())
	root.AddCommand(a.reassignCmd(), a.quorumCmd(), a.quotaCmd(), a.scramCmd())
	return root
}

// helpOrUnknown is the RunE of commands that only group subcommands.
func helpOrUnknown(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
}

// usageArgs wraps a cobra argument check so that its failure is a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// usageError is bad input on the command line; Main exits with ExitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// opError is a failed operation against the cluster: what was attempted, why
// it failed, and the broker's own message if it sent one.
type opError struct {
	what      string
	err       error
	brokerMsg string
}

func (e *opError) Error() string { return e.what + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func failed(what string, err error) error { return &opError{what: what, err: err} }

// errReported means the failures were already printed (commands that act on
// several topics report each); Main only sets the exit code.
var errReported = errors.New("cli: failure already reported")

func (a *app) report(cmd *cobra.Command, err error) int {
	if errors.Is(err, errReported) {
		return ExitError
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "error: %v\n", ue.err)
		path := "gregor"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.stderr, "run '%s --help' for usage\n", path)
		return ExitUsage
	}
	a.printError(err)
	return ExitError
}

// printError prints "error: <what failed>: <KAFKA_ERROR_NAME>: <description>"
// and, for errors with a known remedy, a "hint:" line.
func (a *app) printError(err error) {
	what, cause, brokerMsg := "", err, ""
	var oe *opError
	if errors.As(err, &oe) {
		what, cause, brokerMsg = oe.what, oe.err, oe.brokerMsg
	}
	var b strings.Builder
	b.WriteString("error: ")
	if what != "" {
		b.WriteString(what)
		b.WriteString(": ")
	}
	var ke *kerr.Error
	if errors.As(cause, &ke) {
		fmt.Fprintf(&b, "%s: %s", ke.Message, ke.Description)
	} else {
		b.WriteString(cause.Error())
	}
	if brokerMsg != "" {
		fmt.Fprintf(&b, " (broker says: %s)", brokerMsg)
	}
	fmt.Fprintln(a.stderr, b.String())
	if h := a.hint(cause); h != "" {
		fmt.Fprintf(a.stderr, "hint: %s\n", h)
	}
}

func (a *app) hint(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke.Code {
		case kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicID.Code:
			return "the topic or partition does not exist; list topics with 'gregor topic list', create one with 'gregor topic create NAME'"
		case kerr.TopicAlreadyExists.Code:
			return "see it with 'gregor topic describe NAME', or delete it first with 'gregor topic delete NAME'"
		case kerr.InvalidReplicationFactor.Code:
			return "-r cannot exceed the number of brokers; omit -r for the broker default"
		case kerr.InvalidPartitions.Code:
			return "partitions must be positive, and add-partitions takes the new total, which must exceed the current count"
		case kerr.InvalidConfig.Code, kerr.InvalidRequest.Code:
			return "check the config names and values (Kafka topic config names, e.g. retention.ms=86400000)"
		case kerr.InvalidTopicException.Code:
			return "topic names use only letters, digits, '.', '_' and '-', at most 249 characters"
		case kerr.MessageTooLarge.Code, kerr.RecordListTooLarge.Code:
			return "raise max.message.bytes on the topic ('gregor topic alter-config NAME -c max.message.bytes=N') or send smaller records"
		case kerr.NotEnoughReplicas.Code, kerr.NotEnoughReplicasAfterAppend.Code:
			return "fewer in-sync replicas than min.insync.replicas; wait for brokers to catch up or produce with --acks 1"
		case kerr.TopicAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code:
			return "this client is not allowed to do that; check the ACLs for its principal"
		case kerr.PolicyViolation.Code:
			return "the broker's policy rejected the request; see the broker message"
		}
		return ""
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing is listening at %s; start a broker with 'gregor serve' or point -b at one", a.brokers)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Sprintf("no answer within --timeout %s; is a broker reachable at %s (-b)?", a.timeout, a.brokers)
	}
	return ""
}

// newClient returns a kgo client for the global flags plus opts.
func (a *app) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := splitList(a.brokers)
	if len(seeds) == 0 {
		return nil, usageErrorf("--brokers is empty")
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID(a.clientID),
		kgo.DialTimeout(a.timeout),
		kgo.RetryTimeout(a.timeout),
	}
	if a.saslMechanism != "" {
		mech, err := a.sasl()
		if err != nil {
			return nil, err
		}
		base = append(base, kgo.SASL(mech))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, usageErrorf("client options: %v", err)
	}
	return cl, nil
}

// newAdmin returns a kadm client and a context bounded by --timeout. The
// caller calls done when finished.
func (a *app) newAdmin(ctx context.Context) (adm *kadm.Client, actx context.Context, done func(), err error) {
	cl, err := a.newClient()
	if err != nil {
		return nil, nil, nil, err
	}
	adm = kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(a.timeout.Milliseconds(), 1<<31-1)))
	actx, cancel := context.WithTimeout(ctx, a.timeout)
	return adm, actx, func() { cancel(); cl.Close() }, nil
}

func (a *app) writeJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseKV parses "key=value" flags; flag names the flag in errors.
func parseKV(flag string, kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageErrorf("%s %q: want key=value", flag, kv)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

// topicIDString formats a topic id as Kafka's tools do (URL-safe base64 of
// the 16 bytes, no padding); the zero id (broker without topic ids) is "".
func topicIDString(id kadm.TopicID) string {
	if id == (kadm.TopicID{}) {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// errName is the Kafka error name of err (UNKNOWN_TOPIC_OR_PARTITION), or its
// text when it is not a Kafka error.
func errName(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}
