package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/gregor-dev/gregor/internal/config"
)

// RunNode runs a node until ctx is cancelled; serve calls it with the built
// config. cmd/gregor sets it to node.Run; it is a variable so that this
// package does not import the node (and tests can observe the config).
// A nil RunNode makes serve fail.
var RunNode func(ctx context.Context, cfg config.Node, logger *slog.Logger) error

type serveFlags struct {
	configFile     string
	dataDir        string
	kafkaAddr      string
	advertisedAddr string
	controllerAddr string
	httpAddr       string
	nodeID         int32
	logLevel       string
	set            []string
}

func (a *app) serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a gregor node (broker, controller or both: process.roles)",
		Long: `Run a gregor node until interrupted (SIGINT or SIGTERM).

The configuration is built from, lowest precedence first:
  1. built-in defaults (a single combined node on localhost),
  2. --config FILE, a Kafka server.properties file (node.id, log.dirs,
     listeners, advertised.listeners, controller.quorum.voters,
     gregor.http.addr, log.level and any other Kafka broker property),
  3. --set key=value properties, in the order given,
  4. the explicit flags below.

Logs go to stderr as slog text at --log-level.`,
		Example: `  gregor serve
  gregor serve --config server.properties --set num.partitions=3
  gregor serve --data-dir /var/lib/gregor --kafka-addr 0.0.0.0:9092 --advertised-addr broker1:9092

  # one of three combined nodes (start all three, in any order)
  gregor serve --node-id 2 --data-dir ./data-2 --kafka-addr 127.0.0.1:9192 \
    --controller-addr 127.0.0.1:9193 --http-addr 127.0.0.1:9194 \
    --set controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293

  # a broker-only node of that cluster (process.roles: broker, controller or both)
  gregor serve --node-id 4 --data-dir ./data-4 --kafka-addr 127.0.0.1:9492 \
    --controller-addr 127.0.0.1:9493 --http-addr 127.0.0.1:9494 --set process.roles=broker \
    --set controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := buildNodeConfig(cmd, f)
			if err != nil {
				return err
			}
			level, err := parseLevel(cfg.LogLevel)
			if err != nil {
				return usageErrorf("%v", err)
			}
			logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			if RunNode == nil {
				return failed("serve", errors.New("no node implementation linked into this binary"))
			}
			if err := RunNode(cmd.Context(), cfg, logger); err != nil && !errors.Is(err, context.Canceled) {
				return failed("serve", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "server.properties file to load")
	fl.StringVar(&f.dataDir, "data-dir", config.DefaultDataDir, "directory for partition logs and metadata (log.dirs)")
	fl.StringVar(&f.kafkaAddr, "kafka-addr", config.DefaultKafkaAddr, "Kafka protocol listen address (listeners)")
	fl.StringVar(&f.advertisedAddr, "advertised-addr", "", "address clients are told to connect to (advertised.listeners; default: --kafka-addr)")
	fl.StringVar(&f.controllerAddr, "controller-addr", config.DefaultControllerAddr, "controller (Raft) listen address")
	fl.StringVar(&f.httpAddr, "http-addr", config.DefaultHTTPAddr, "admin HTTP listen address (/metrics, /healthz, /readyz)")
	fl.Int32Var(&f.nodeID, "node-id", config.DefaultNodeID, "node id (node.id)")
	fl.StringVar(&f.logLevel, "log-level", config.DefaultLogLevel, "log level: debug, info, warn or error")
	fl.StringArrayVar(&f.set, "set", nil, "set a Kafka property, key=value (repeatable)")
	return cmd
}

// buildNodeConfig applies defaults < --config < --set < explicit flags, then
// validates.
func buildNodeConfig(cmd *cobra.Command, f serveFlags) (config.Node, error) {
	cfg := config.DefaultNode()
	if f.configFile != "" {
		file, err := os.Open(f.configFile)
		if err != nil {
			return cfg, failed("read config", err)
		}
		props, err := config.LoadProperties(file)
		file.Close()
		if err != nil {
			return cfg, failed("read config "+f.configFile, err)
		}
		if err := cfg.ApplyProperties(props); err != nil {
			return cfg, failed("config "+f.configFile, err)
		}
	}
	if len(f.set) > 0 {
		// Applied one at a time so a later --set of the same key wins.
		for _, kv := range f.set {
			props, err := parseKV("--set", []string{kv})
			if err != nil {
				return cfg, err
			}
			if err := cfg.ApplyProperties(props); err != nil {
				return cfg, usageErrorf("--set %s: %v", kv, err)
			}
		}
	}
	fl := cmd.Flags()
	if fl.Changed("data-dir") {
		cfg.DataDir = f.dataDir
	}
	if fl.Changed("kafka-addr") {
		cfg.KafkaAddr = f.kafkaAddr
	}
	if fl.Changed("advertised-addr") {
		cfg.AdvertisedAddr = f.advertisedAddr
	}
	if fl.Changed("controller-addr") {
		cfg.ControllerAddr = f.controllerAddr
	}
	if fl.Changed("http-addr") {
		cfg.HTTPAddr = f.httpAddr
	}
	if fl.Changed("node-id") {
		cfg.NodeID = f.nodeID
	}
	if fl.Changed("log-level") {
		cfg.LogLevel = f.logLevel
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageErrorf("%v", err)
	}
	return cfg, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}
