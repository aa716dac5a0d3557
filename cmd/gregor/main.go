// Command gregor is a Kafka-compatible event streaming broker and its client.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gregor-dev/gregor/internal/cli"
	"github.com/gregor-dev/gregor/internal/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cli.RunNode = node.Run
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
