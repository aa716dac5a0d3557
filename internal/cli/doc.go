// Package cli owns gregor's command line: the cobra command tree behind
// cmd/gregor (serve, topic, produce, consume, group, bench), flag parsing, output formats
// (tables with text/tabwriter, --json with encoding/json) and the translation
// of client errors into one "error: ..." line with a hint and an exit code.
//
// Every client command talks to brokers through franz-go (kgo for produce and
// consume, kadm for administration), so the same commands work against gregor
// and against any Kafka cluster. serve only builds a config.Node from defaults,
// a server.properties file and flags, and hands it to RunNode; it must not
// know how a node is put together. cluster local runs nodes as child
// processes of this same binary (its serve command), never in process.
//
// The package holds no global state other than RunNode: Main builds a fresh
// command tree per call, so tests run many invocations in one process.
//
// Exit codes: 0 success, 1 a command failed, 2 bad usage (flags, arguments).
package cli
