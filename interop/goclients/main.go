// Command goclients runs interop checks of three Go Kafka clients, IBM/sarama,
// segmentio/kafka-go and twmb/franz-go, against the broker at $BOOTSTRAP. It prints one
// "PASS|FAIL|SKIP <client>: ..." line per check and exits 1 when any failed.
// Group checks run only when $INTEROP_GROUPS is "yes" (see
// ../python/apiversions.py). It lives in its own module so the gregor module
// does not depend on these clients.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"
)

var (
	bootstrap = os.Getenv("BOOTSTRAP")
	groups    = os.Getenv("INTEROP_GROUPS") == "yes"
	run       = randHex()
	failures  int
)

func randHex() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func report(status, client, what string) {
	if status == "FAIL" {
		failures++
	}
	fmt.Printf("%s %s: %s\n", status, client, what)
}

// skipErr makes a check report SKIP instead of PASS.
type skipErr string

func (s skipErr) Error() string { return string(s) }

// check runs fn with a time limit and reports its outcome.
// With $INTEROP_ONLY set, only checks whose "client: name" contains it run.
func check(client, name string, limit time.Duration, fn func(ctx context.Context) (string, error)) {
	if only := os.Getenv("INTEROP_ONLY"); only != "" && !strings.Contains(client+": "+name, only) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1)
	go func() {
		msg, err := fn(ctx)
		done <- result{msg, err}
	}()
	select {
	case r := <-done:
		switch e := r.err.(type) {
		case nil:
			report("PASS", client, r.msg)
		case skipErr:
			report("SKIP", client, string(e))
		default:
			report("FAIL", client, fmt.Sprintf("%s: %v", name, r.err))
		}
	case <-time.After(limit + 5*time.Second):
		// The check ignored its context; the process exits soon anyway.
		report("FAIL", client, fmt.Sprintf("%s: did not finish within %v", name, limit))
	}
}

func main() {
	if bootstrap == "" {
		fmt.Fprintln(os.Stderr, "BOOTSTRAP must be set")
		os.Exit(2)
	}
	log.SetOutput(os.Stderr)
	if os.Getenv("VERBOSE") == "" {
		log.SetOutput(io.Discard)
	}
	if len(os.Args) > 1 && os.Args[1] == "cluster" {
		clusterChecks()
	} else {
		saramaChecks()
		saramaTxChecks()
		kafkaGoChecks()
		franzGoChecks()
	}
	if failures > 0 {
		os.Exit(1)
	}
}
