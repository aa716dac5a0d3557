package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/gregor-dev/gregor/internal/chaintest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
)

// runInner runs inside the client namespace: the cluster, the workloads,
// the nemesis, the checker and the report.
func runInner(t *testing.T) {
	prof := runProfile()
	zerolog.SetGlobalLevel(zerolog.Disabled) // toxiproxy's toxics log through the global logger
	seed, out, bin := *flagSeed, *flagOut, os.Getenv("GREGOR_CHAOS_BIN")
	t.Logf("profile %s: %v of faults, >= %d faults, >= %d acked records, %d records/s; seed %d",
		*flagProfile, prof.duration, prof.faults, prof.records, prof.rate, seed)

	c := newCluster(bin, out, *flagNodes)
	defer func() { // on a failure; the normal end stopped them already
		for _, n := range c.nodes {
			n.kill()
		}
	}()
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		if err := n.ready(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	adm, admCl, err := c.admin()
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	if err := createTopic(adm, logTopic, logPartitions); err != nil {
		t.Fatal(err)
	}

	// Clients reach the nodes through one toxiproxy proxy each, in this
	// namespace; the nemesis and the checker dial directly.
	proxies := map[int]*toxiproxy.Proxy{}
	dialMap := map[string]string{}
	if *flagLinks {
		srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
		for _, n := range c.nodes {
			p := toxiproxy.NewProxy(srv, fmt.Sprintf("node-%d", n.id), "127.0.0.1:0", n.kafkaAddr())
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			proxies[n.id] = p
			dialMap[n.kafkaAddr()] = p.Listen
		}
	}
	dial := proxyDialer(dialMap)
	seeds := c.seeds()

	rec := newRecorder()
	wctx, stopWorkloads := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var werrMu sync.Mutex
	var werrs []string
	goWork := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				werrMu.Lock()
				werrs = append(werrs, fmt.Sprintf("%s: %v", name, err))
				werrMu.Unlock()
			}
		}()
	}
	for w := range producers {
		goWork(fmt.Sprintf("producer %d", w), func() error {
			return runProducer(wctx, rec, seeds, dial, w, prof.rate/producers)
		})
	}
	goWork("reader", func() error { return runReader(wctx, rec, seeds, dial) })
	goWork("hw reader", func() error { return runHWReader(wctx, rec, seeds, dial) })
	var grps []*groupWorkload
	if *flagGroup {
		grps = []*groupWorkload{
			newGroupWorkload(rec, seeds, dial, rand.New(rand.NewPCG(uint64(seed), 2)), "chaos-group", false),
			newGroupWorkload(rec, seeds, dial, rand.New(rand.NewPCG(uint64(seed), 3)), "chaos-group-848", true),
		}
		for _, grp := range grps {
			goWork(grp.name, func() error { return grp.run(wctx) })
		}
	}

	var chain *chaintest.Chain
	if *flagTxn {
		// Two chained exactly-once stages (internal/chaintest), RF 3, whose
		// members restart their transactional session when a fault breaks it.
		// The session is the broker's default minimum: the nodes run
		// on default group settings.
		chain = chaintest.Setup(t, chaintest.Config{Seeds: seeds, Stages: 2, Keys: 8, PerKey: 500,
			Partitions: 3, Replicas: 3, Restart: true, SessionTimeout: 6 * time.Second})
		chain.Start()
	}

	// Writes flow before the first fault.
	if d := awaitAll(rec, 0, 60*time.Second); d < 0 {
		t.Fatalf("no acknowledged write on every partition within 60s of the start")
	}

	nm := &nemesis{c: c, r: rec, rng: rand.New(rand.NewPCG(uint64(seed), 1)), adm: adm, kcl: admCl, logf: t.Logf,
		disks: os.Getenv(diskEnv) == "mounted"}
	if !nm.disks {
		t.Logf("%s", os.Getenv(diskEnv))
	}
	if *flagLinks {
		nm.proxies = proxies
	}
	nctx, cancelN := context.WithCancel(context.Background())
	defer cancelN()
	deadline := time.Now().Add(prof.duration)
	nm.run(nctx, deadline, prof.faults, int64(prof.records))

	// Heal everything: routes, toxics, stopped and dead nodes.
	nm.healAll()
	for _, n := range c.nodes {
		n.mu.Lock()
		stopped := n.stopped
		n.mu.Unlock()
		if stopped {
			n.signal(syscall.SIGCONT)
		}
		if !n.running() {
			if err := nm.restart(n); err != nil {
				t.Errorf("restart node %d: %v", n.id, err)
			}
		}
	}
	lastHeal := rec.now()
	finalRecovery := awaitAll(rec, lastHeal, recoveryLimit)
	if finalRecovery < 0 {
		nm.violations = append(nm.violations, fmt.Sprintf("writes did not resume on every partition within %v of the last heal", recoveryLimit))
	}
	t.Logf("last heal at %.1fs; writes on every partition %.1fs later", lastHeal.Seconds(), finalRecovery.Seconds())

	txnDone := true
	if chain != nil {
		deadline := time.Now().Add(3 * time.Minute)
		for chain.Seen() < chain.Total() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // poll interval
		}
		txnDone = chain.Seen() >= chain.Total()
	}
	stopWorkloads()
	wg.Wait()
	for _, e := range werrs {
		t.Logf("workload: %s", e)
	}

	// The checker.
	res := check(t, c, adm, rec, grps)
	res.faults = nm.faults
	res.violations = append(nm.violations, res.violations...)
	res.seed = seed
	res.nodes = len(c.nodes)
	res.finalRecovery = finalRecovery
	if !nm.disks {
		res.notes = append(res.notes, os.Getenv(diskEnv))
	}
	if chain != nil {
		chain.Stop()
		res.abortedReads = chain.AbortedReads()
		restarts := chain.RestartErrors()
		whys := slices.SortedFunc(maps.Keys(restarts), func(a, b string) int { return restarts[b] - restarts[a] })
		for i, e := range whys {
			t.Logf("txn chain: %d sessions restarted after: %s", restarts[e], e)
			if i < 10 { // the report keeps the commonest
				res.notes = append(res.notes, fmt.Sprintf("txn chain: %d sessions restarted after: %s", restarts[e], e))
			}
		}
		ok := t.Run("txn-chain", func(t *testing.T) { chain.Check(t) })
		res.txn = fmt.Sprintf("%d of %d records through 2 exactly-once stages", chain.Seen(), chain.Total())
		if !txnDone {
			res.violations = append(res.violations, "txn chain: "+res.txn+" within 3 minutes of the last heal")
		}
		if !ok {
			res.violations = append(res.violations, "txn chain: its checks failed (the txn-chain subtest's errors above)")
			res.txn += ", checks FAILED"
		} else {
			res.txn += ", output = input, no aborted read"
		}
	}

	for _, grp := range grps {
		grp.mu.Lock()
		h := "op,call_ns,return_ns,partition,offset\n" + strings.Join(grp.history, "\n") + "\n"
		grp.mu.Unlock()
		if err := os.WriteFile(filepath.Join(out, grp.historyFile()), []byte(h), 0o644); err != nil {
			t.Errorf("group history: %v", err)
		}
	}
	// A clean shutdown of every node ends the run; one that hangs is
	// reported (not a safety violation).
	for _, n := range c.nodes {
		if err := n.terminate(20 * time.Second); err != nil {
			res.notes = append(res.notes, "shutdown: "+err.Error())
			t.Logf("shutdown: %v", err)
		}
	}
	summary := res.summary()
	if err := writeReport(out, res, rec, prof); err != nil {
		t.Errorf("report: %v", err)
	}
	for _, v := range res.violations {
		t.Errorf("VIOLATION: %s", v)
	}
	if int(rec.acked.Load()) < prof.records {
		t.Errorf("only %d records acknowledged, the profile wants %d", rec.acked.Load(), prof.records)
	}
	if len(nm.faults) < prof.faults {
		t.Errorf("only %d faults injected, the profile wants %d", len(nm.faults), prof.faults)
	}
	t.Logf("report: %s, timeline: %s", filepath.Join(out, "report.md"), filepath.Join(out, "timeline.svg"))
	// make prints it again once go test is done, as the run's last line.
	if err := os.WriteFile(filepath.Join(out, "summary.txt"), []byte(summary+"\n"), 0o644); err != nil {
		t.Errorf("summary: %v", err)
	}
	fmt.Println(summary)
}

// awaitAll waits until every partition of logTopic acknowledged a write
// answered after t, and returns how long after t (-1: not within d).
func awaitAll(r *recorder, t time.Duration, d time.Duration) time.Duration {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.ackedAllAfter(t) {
			return r.now() - t
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	return -1
}

// createTopic creates a topic with RF 3 and min.insync.replicas=2, and
// waits until every partition has a leader.
func createTopic(adm *kadm.Client, topic string, partitions int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	minISR := "2"
	for {
		resp, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("create %s: %v", topic, err)
		}
		time.Sleep(500 * time.Millisecond) // retry pacing
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			td := md.Topics[topic]
			ok := td.Err == nil && len(td.Partitions) == int(partitions)
			for _, p := range td.Partitions {
				ok = ok && p.Leader >= 1 && len(p.ISR) == 3
			}
			if ok {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: partitions not all led with a full ISR: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}
