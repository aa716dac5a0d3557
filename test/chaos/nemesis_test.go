package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fault is one injected fault: from start to heal it is active; recovery is
// how long after the heal every partition of logTopic acknowledged a write
// again (-1: not within recoveryLimit).
type fault struct {
	n        int
	kind     string // one of faultKinds
	desc     string
	start    time.Duration
	heal     time.Duration
	recovery time.Duration
}

const recoveryLimit = 30 * time.Second

// faultKinds are the kinds of fault, in the order reports list them.
var faultKinds = []string{"kill", "stop", "partition", "link", "corrupt", "disk", "crash"}

// nemesis injects faults from a seeded schedule. Everything it does is
// decided by rng, so a seed replays the same choices (the cluster's answers,
// such as who leads, still vary with timing).
type nemesis struct {
	c       *cluster
	r       *recorder
	rng     *rand.Rand
	adm     *kadm.Client
	kcl     *kgo.Client              // adm's client, for requests to one broker
	disks   bool                     // the data directories are filesystems of their own: disk faults
	proxies map[int]*toxiproxy.Proxy // node -> the clients' proxy to it; nil: no link faults
	logf    func(format string, args ...any)

	faults     []fault
	violations []string
	cuts       [][2]int // blackholed (from node, to node) pairs in place
}

func (nm *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(nm.rng.Int64N(int64(hi-lo)+1))
}

func (nm *nemesis) pick(ids []int) int { return ids[nm.rng.IntN(len(ids))] }

func (nm *nemesis) ids() []int {
	var ids []int
	for _, n := range nm.c.nodes {
		ids = append(ids, n.id)
	}
	return ids
}

// run injects faults until the deadline has passed, at least minFaults
// were injected and minRecords acknowledged, waiting after each heal for
// writes to resume.
func (nm *nemesis) run(ctx context.Context, deadline time.Time, minFaults int, minRecords int64) {
	type choice struct {
		kind   string
		weight int
		f      func(ctx context.Context, f *fault) error
	}
	choices := []choice{
		{"kill", 2, nm.killRandom}, {"kill", 2, nm.killLeader}, {"kill", 1, nm.killController},
		{"crash", 1, nm.crash},
		{"stop", 3, nm.stop},
		{"partition", 2, nm.isolate}, {"partition", 1, nm.bridge}, {"partition", 1, nm.oneWay},
		{"corrupt", 1, nm.corrupt},
	}
	if nm.proxies != nil {
		choices = append(choices, choice{"link", 3, nm.link})
	}
	if nm.disks && *flagDiskWeight > 0 {
		choices = append(choices, choice{"disk", *flagDiskWeight, nm.disk})
	}
	if *flagOnly != "" {
		only := strings.Split(*flagOnly, ",")
		choices = slices.DeleteFunc(choices, func(c choice) bool { return !slices.Contains(only, c.kind) })
		if len(choices) == 0 {
			panic("-chaos.only names no fault kind of " + strings.Join(faultKinds, ", "))
		}
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	for i := 1; ctx.Err() == nil && (time.Now().Before(deadline) || len(nm.faults) < minFaults || nm.r.acked.Load() < minRecords); i++ {
		x := nm.rng.IntN(total)
		var ch choice
		for _, c := range choices {
			if x < c.weight {
				ch = c
				break
			}
			x -= c.weight
		}
		f := fault{n: i, start: nm.r.now()}
		err := ch.f(ctx, &f)
		if err != nil {
			// The fault could not be applied (say, no leader known right
			// now); heal whatever it did and go on.
			nm.logf("fault %d (%s): not applied: %v", i, f.kind, err)
			nm.healAll()
			i--
			time.Sleep(time.Second) // before the next try
			continue
		}
		if f.heal == 0 {
			f.heal = nm.r.now()
		}
		f.recovery = nm.awaitWrites(ctx, f.heal)
		nm.faults = append(nm.faults, f)
		rec := "writes resumed"
		if f.recovery < 0 {
			rec = "WRITES DID NOT RESUME within 30s"
			nm.violations = append(nm.violations, fmt.Sprintf("fault %d (%s): writes did not resume within %v of the heal", f.n, f.desc, recoveryLimit))
		} else {
			rec = fmt.Sprintf("writes on every partition %.1fs after the heal", f.recovery.Seconds())
		}
		nm.logf("fault %d at %.1fs: %s; healed at %.1fs; %s; %d acked so far", f.n, f.start.Seconds(), f.desc, f.heal.Seconds(), rec, nm.r.acked.Load())
		time.Sleep(nm.between(300*time.Millisecond, 1500*time.Millisecond)) // the schedule's gap
	}
}

// awaitWrites waits until every partition of logTopic acknowledged a
// write answered after heal. It gives up after twice the limit (so the
// schedule goes on), returning -1 past the limit.
func (nm *nemesis) awaitWrites(ctx context.Context, heal time.Duration) time.Duration {
	deadline := time.Now().Add(2 * recoveryLimit)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if nm.r.ackedAllAfter(heal) {
			if d := nm.r.now() - heal; d <= recoveryLimit {
				return d
			}
			return -1
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	return -1
}

// restart starts a node again and waits until it is ready.
func (nm *nemesis) restart(n *node) error {
	if err := n.start(); err != nil {
		return err
	}
	if err := n.ready(60 * time.Second); err != nil {
		nm.violations = append(nm.violations, fmt.Sprintf("node %d did not become ready within 60s of its restart: %v", n.id, err))
		return nil
	}
	return nil
}

func (nm *nemesis) killNode(f *fault, id int, why string) error {
	n := nm.c.node(id)
	f.kind = "kill"
	down := nm.between(500*time.Millisecond, 6*time.Second)
	f.desc = fmt.Sprintf("kill -9 node %d (%s), down %.1fs", id, why, down.Seconds())
	n.kill()
	time.Sleep(down)
	f.heal = nm.r.now()
	return nm.restart(n)
}

func (nm *nemesis) killRandom(ctx context.Context, f *fault) error {
	return nm.killNode(f, nm.pick(nm.ids()), "random")
}

func (nm *nemesis) killLeader(ctx context.Context, f *fault) error {
	p := int32(nm.rng.IntN(logPartitions))
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, err := nm.c.leaderOf(cctx, nm.adm, logTopic, p)
	if err != nil {
		return err
	}
	return nm.killNode(f, id, fmt.Sprintf("leader of %s[%d]", logTopic, p))
}

func (nm *nemesis) killController(ctx context.Context, f *fault) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, err := nm.c.controller(cctx, nm.adm)
	if err != nil {
		return err
	}
	return nm.killNode(f, id, "active controller")
}

// crash kills a majority of the nodes, or all of them, with kill -9 a few
// hundred milliseconds apart, keeps them down, and starts them all again
// before waiting for any: a node alone is not ready without a quorum. While
// they are down no partition has min.insync.replicas, so this checks that
// the cluster comes back from losing its quorum, and its leaders, at once.
func (nm *nemesis) crash(ctx context.Context, f *fault) error {
	ids := nm.ids()
	nm.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	if nm.rng.IntN(2) == 0 {
		ids = ids[:len(ids)/2+1] // a bare majority
	}
	down := nm.between(500*time.Millisecond, 6*time.Second)
	f.kind = "crash"
	f.desc = fmt.Sprintf("kill -9 nodes %v, down %.1fs, restarted together", ids, down.Seconds())
	for i, id := range ids {
		if i > 0 {
			time.Sleep(nm.between(0, 300*time.Millisecond))
		}
		nm.c.node(id).kill()
	}
	time.Sleep(down)
	f.heal = nm.r.now()
	var errs []error
	for _, id := range ids {
		errs = append(errs, nm.c.node(id).start()) // every node, whatever one of them says
	}
	for _, id := range ids {
		if err := nm.c.node(id).ready(60 * time.Second); err != nil {
			nm.violations = append(nm.violations, fmt.Sprintf("node %d did not become ready within 60s of its restart: %v", id, err))
		}
	}
	return errors.Join(errs...)
}

func (nm *nemesis) stop(ctx context.Context, f *fault) error {
	id := nm.pick(nm.ids())
	n := nm.c.node(id)
	d := nm.between(time.Second, 10*time.Second)
	f.kind = "stop"
	f.desc = fmt.Sprintf("SIGSTOP node %d for %.1fs", id, d.Seconds())
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	time.Sleep(d)
	f.heal = nm.r.now()
	return n.signal(syscall.SIGCONT)
}

// cut blackholes traffic from node a to node b.
func (nm *nemesis) cut(a, b int) error {
	if err := blackhole(a, nodeIP(b)); err != nil {
		return err
	}
	nm.cuts = append(nm.cuts, [2]int{a, b})
	return nil
}

// healAll removes every blackhole route and every toxic.
func (nm *nemesis) healAll() {
	for _, c := range nm.cuts {
		if err := unblackhole(c[0], nodeIP(c[1])); err != nil {
			nm.logf("heal: %v", err)
		}
	}
	nm.cuts = nil
	for _, p := range nm.proxies {
		p.Toxics.ResetToxics(context.Background())
	}
}

// partition cuts every pair between groups a and b (both ways, or from a
// to b only), holds it, and heals.
func (nm *nemesis) partition(f *fault, a, b []int, oneWay bool, what string) error {
	d := nm.between(3*time.Second, 12*time.Second)
	f.kind = "partition"
	f.desc = fmt.Sprintf("%s for %.1fs", what, d.Seconds())
	for _, x := range a {
		for _, y := range b {
			if err := nm.cut(x, y); err != nil {
				return err
			}
			if !oneWay {
				if err := nm.cut(y, x); err != nil {
					return err
				}
			}
		}
	}
	time.Sleep(d)
	f.heal = nm.r.now()
	nm.healAll()
	return nil
}

// isolate splits the nodes into a minority and a majority (one node alone
// with 3 nodes; one or two with 5).
func (nm *nemesis) isolate(ctx context.Context, f *fault) error {
	ids := nm.ids()
	nm.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	k := 1 + nm.rng.IntN((len(ids)-1)/2)
	minority, majority := ids[:k], ids[k:]
	sort.Ints(minority)
	sort.Ints(majority)
	what := fmt.Sprintf("minority %v | majority %v", minority, majority)
	if k == 1 {
		what = fmt.Sprintf("node %d isolated from %v", minority[0], majority)
	}
	return nm.partition(f, minority, majority, false, what)
}

// bridge splits the nodes into two sides that cannot talk, with one node
// seeing both.
func (nm *nemesis) bridge(ctx context.Context, f *fault) error {
	ids := nm.ids()
	nm.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	b, rest := ids[0], ids[1:]
	left, right := rest[:len(rest)/2], rest[len(rest)/2:]
	return nm.partition(f, left, right, false, fmt.Sprintf("bridge: %v | %v, node %d sees both", left, right, b))
}

// oneWay drops what one node sends to another (or to all others): it still
// receives.
func (nm *nemesis) oneWay(ctx context.Context, f *fault) error {
	ids := nm.ids()
	a := nm.pick(ids)
	var others []int
	for _, id := range ids {
		if id != a {
			others = append(others, id)
		}
	}
	if nm.rng.IntN(2) == 0 {
		others = []int{nm.pick(others)}
	}
	return nm.partition(f, []int{a}, others, true, fmt.Sprintf("one-way: node %d cannot send to %v", a, others))
}

// link puts a toxic on the clients' link to one node.
func (nm *nemesis) link(ctx context.Context, f *fault) error {
	id := nm.pick(nm.ids())
	p := nm.proxies[id]
	d := nm.between(3*time.Second, 10*time.Second)
	var spec, what string
	switch nm.rng.IntN(4) {
	case 0:
		lat, jit := 50+nm.rng.IntN(700), nm.rng.IntN(300)
		spec = fmt.Sprintf(`{"name":"chaos","type":"latency","stream":"%s","attributes":{"latency":%d,"jitter":%d}}`, nm.stream(), lat, jit)
		what = fmt.Sprintf("latency %dms ±%dms", lat, jit)
	case 1:
		rate := 16 + nm.rng.IntN(200)
		spec = fmt.Sprintf(`{"name":"chaos","type":"bandwidth","stream":"%s","attributes":{"rate":%d}}`, nm.stream(), rate)
		what = fmt.Sprintf("bandwidth %d KB/s", rate)
	case 2:
		to := nm.rng.IntN(2000)
		spec = fmt.Sprintf(`{"name":"chaos","type":"reset_peer","stream":"upstream","toxicity":0.5,"attributes":{"timeout":%d}}`, to)
		what = fmt.Sprintf("connection resets (half the connections, after %dms)", to)
	default:
		spec = `{"name":"chaos","type":"timeout","stream":"upstream","toxicity":0.5,"attributes":{"timeout":2000}}`
		what = "half the connections hang, then close"
	}
	f.kind = "link"
	f.desc = fmt.Sprintf("clients' link to node %d: %s for %.1fs", id, what, d.Seconds())
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		return err
	}
	time.Sleep(d)
	f.heal = nm.r.now()
	p.Toxics.ResetToxics(context.Background())
	return nil
}

func (nm *nemesis) stream() string {
	if nm.rng.IntN(2) == 0 {
		return "upstream"
	}
	return "downstream"
}

// corrupt kills a follower of one partition, flips bytes inside the last
// batch of that partition's newest segment, and restarts it: the restart
// must find the damage by CRC, truncate it and fetch it again (the replica
// check at the end compares the bytes).
func (nm *nemesis) corrupt(ctx context.Context, f *fault) error {
	p := int32(nm.rng.IntN(logPartitions))
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	leader, replicas, err := nm.c.leaderAndReplicas(cctx, nm.adm, logTopic, p)
	if err != nil {
		return err
	}
	var followers []int
	for _, id := range replicas {
		if int(id) != leader {
			followers = append(followers, int(id))
		}
	}
	if len(followers) == 0 {
		return fmt.Errorf("%s[%d] has no follower", logTopic, p)
	}
	id := nm.pick(followers)
	n := nm.c.node(id)
	f.kind = "corrupt"
	n.kill()
	dir := filepath.Join(n.dir, fmt.Sprintf("%s-%d", logTopic, p))
	what, err := flipTail(dir, nm.rng)
	if err != nil {
		what = "nothing to corrupt: " + err.Error()
	}
	f.desc = fmt.Sprintf("kill -9 node %d (follower of %s[%d]), %s, restart", id, logTopic, p, what)
	f.heal = nm.r.now()
	return nm.restart(n)
}

// flipTail flips a few bytes after the CRC field of the last complete batch
// of the newest non-empty segment in dir.
func flipTail(dir string, rng *rand.Rand) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var logs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			logs = append(logs, e.Name())
		}
	}
	slices.Sort(logs)
	for i := len(logs) - 1; i >= 0; i-- {
		path := filepath.Join(dir, logs[i])
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		last := -1
		for pos := 0; pos+61 <= len(b); {
			l := int(binary.BigEndian.Uint32(b[pos+8:]))
			if l < 49 || pos+12+l > len(b) {
				break
			}
			last = pos
			pos += 12 + l
		}
		if last < 0 {
			continue
		}
		end := last + 12 + int(binary.BigEndian.Uint32(b[last+8:]))
		fh, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		var at []int
		for range 4 {
			pos := last + 21 + rng.IntN(end-last-21)
			if _, err := fh.WriteAt([]byte{b[pos] ^ 0xff}, int64(pos)); err != nil {
				fh.Close()
				return "", err
			}
			at = append(at, pos)
		}
		if err := fh.Close(); err != nil {
			return "", err
		}
		return fmt.Sprintf("flipped bytes %v of %s (batch at %d, %d bytes)", at, logs[i], last, end-last), nil
	}
	return "", fmt.Errorf("no complete batch in %s", dir)
}
