package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupWorkload is a consumer group on logTopic whose members commit after
// every poll, while members leave and join every few seconds. A poller
// reads the committed offsets (OffsetFetch) all along; checkOffsets then
// checks that the reads are explained by the commits (groupcheck_test.go).
// Two run side by side: one of the classic protocol, one of KIP-848's
// (the coordinator assigns; franz-go's server-side balancer).
type groupWorkload struct {
	r      *recorder
	seeds  []string
	dial   kgo.Opt
	rng    *rand.Rand
	name   string
	kip848 bool

	mu      sync.Mutex
	commits int                    // successful commits
	joins   int                    // members started
	errs    map[string]int         // commit errors by text, for the log
	writes  map[int32][]groupWrite // commits acknowledged or of unknown outcome, per partition
	reads   map[int32][]groupRead  // committed offsets fetched, per partition
	history []string               // CSV lines: commits answered and offsets read, with times
}

func newGroupWorkload(r *recorder, seeds []string, dial kgo.Opt, rng *rand.Rand, name string, kip848 bool) *groupWorkload {
	return &groupWorkload{r: r, seeds: seeds, dial: dial, rng: rng, name: name, kip848: kip848,
		errs: map[string]int{}, writes: map[int32][]groupWrite{}, reads: map[int32][]groupRead{}}
}

type member struct {
	cancel context.CancelFunc
	done   chan struct{}
	// commitMu makes a member's commits monotonic: the offsets are read
	// and committed under it. kgo serializes a client's commits but reads
	// nothing itself, so a commit from OnPartitionsRevoked that took its
	// snapshot while the poll loop's commit was in flight could be sent
	// after the loop's next, newer one and set the offset back (seed
	// 862804's four "regressions": the acknowledged commits themselves
	// went 14518, then 14508). A broker must serve the last commit, so
	// such a workload could not tell a broker bug from its own.
	commitMu sync.Mutex
	// commitSends counts the OffsetCommit requests the member's client
	// wrote to a broker, retries included (kgo retries a commit whose
	// coordinator moved or whose connection broke).
	commitSends atomic.Int64
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (m *member) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == kmsg.OffsetCommit.Int16() {
		m.commitSends.Add(1)
	}
}

func (g *groupWorkload) startMember(ctx context.Context) *member {
	mctx, cancel := context.WithCancel(ctx)
	m := &member{cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.joins++
	g.mu.Unlock()
	go func() {
		defer close(m.done)
		opts := []kgo.Opt{kgo.SeedBrokers(g.seeds...), g.dial,
			kgo.ConsumerGroup(g.name), kgo.ConsumeTopics(logTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.SessionTimeout(10 * time.Second),
			kgo.FetchMaxWait(500 * time.Millisecond), kgo.WithHooks(m),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
				g.commit(ctx, cl, m)
			})}
		if g.kip848 {
			opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return
		}
		defer cl.Close() // leaves the group
		for mctx.Err() == nil {
			fs := cl.PollRecords(mctx, 2000)
			if mctx.Err() != nil {
				break
			}
			_ = fs
			g.commit(mctx, cl, m)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		g.commit(cctx, cl, m)
		ccancel()
	}()
	return m
}

// commit commits what cl polled and notes each successful commit.
func (g *groupWorkload) commit(ctx context.Context, cl *kgo.Client, m *member) {
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	offs := cl.UncommittedOffsets()
	if len(offs) == 0 {
		return
	}
	call := g.r.now()
	sendsBefore := m.commitSends.Load()
	cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		ret := g.r.now()
		// A refusal only proves nothing was written when the answer is
		// to the one request sent: kgo retries a commit on another
		// coordinator, and the first attempt may have been written
		// (seed 556661: a coordinator whose disk filled exited after
		// its commit had reached its followers, and the retry was
		// refused by the next coordinator).
		retried := m.commitSends.Load()-sendsBefore > 1
		// unknown notes a commit that may have been written, or may be
		// written later (it reached a coordinator, or may have).
		unknown := func(p int32, why string) {
			if o, ok := offs[logTopic][p]; ok {
				g.writes[p] = append(g.writes[p], groupWrite{offset: o.Offset, call: call, ret: unknownReturn})
				g.history = append(g.history, fmt.Sprintf("commit?,%d,,%d,%d", call, p, o.Offset))
			}
			g.errs[why]++
		}
		if err != nil {
			for p := range offs[logTopic] {
				unknown(p, err.Error())
			}
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				switch p.ErrorCode {
				case 0:
				case kerr.IllegalGeneration.Code, kerr.UnknownMemberID.Code, kerr.RebalanceInProgress.Code,
					kerr.FencedInstanceID.Code, kerr.StaleMemberEpoch.Code, kerr.FencedMemberEpoch.Code:
					if retried {
						unknown(p.Partition, fmt.Sprintf("commit error code %d after a retry", p.ErrorCode))
						continue
					}
					// Refused before anything was written.
					g.errs[fmt.Sprintf("commit error code %d", p.ErrorCode)]++
					continue
				default:
					unknown(p.Partition, fmt.Sprintf("commit error code %d", p.ErrorCode))
					continue
				}
				if o, ok := offs[t.Topic][p.Partition]; ok {
					g.commits++
					g.writes[p.Partition] = append(g.writes[p.Partition], groupWrite{offset: o.Offset, call: call, ret: ret, acked: true})
					g.history = append(g.history, fmt.Sprintf("commit,%d,%d,%d,%d", call, ret, p.Partition, o.Offset))
				}
			}
		}
	})
}

// run keeps two to four members in the group, replacing or adding one
// every 2-8 s, and polls the committed offsets every 200 ms.
func (g *groupWorkload) run(ctx context.Context) error {
	var members []*member
	for range 3 {
		members = append(members, g.startMember(ctx))
	}
	go g.poll(ctx)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(2000+g.rng.IntN(6000)) * time.Millisecond): // membership churn
		}
		if ctx.Err() != nil {
			break
		}
		if len(members) > 2 && (len(members) >= 4 || g.rng.IntN(2) == 0) {
			i := g.rng.IntN(len(members))
			members[i].cancel()
			members = append(members[:i], members[i+1:]...)
		}
		if len(members) < 4 {
			members = append(members, g.startMember(ctx))
		}
	}
	for _, m := range members {
		m.cancel()
		<-m.done
	}
	return nil
}

func (g *groupWorkload) poll(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.seeds...), g.dial, kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		call := g.r.now()
		offs, err := adm.FetchOffsets(rctx, g.name)
		ret := g.r.now()
		cancel()
		if err == nil {
			g.mu.Lock()
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil || o.Topic != logTopic {
					return
				}
				g.reads[o.Partition] = append(g.reads[o.Partition], groupRead{offset: o.At, call: call, ret: ret})
				g.history = append(g.history, fmt.Sprintf("read,%d,%d,%d,%d", call, ret, o.Partition, o.At))
			})
			g.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // poll pacing
		}
	}
}

// historyFile names the CSV the run leaves of the workload's commits and
// reads (group-history.csv for the classic group).
func (g *groupWorkload) historyFile() string {
	if g.kip848 {
		return "group-848-history.csv"
	}
	return "group-history.csv"
}

// checkOffsets checks every partition's reads against its commits; call it
// once the workload stopped.
func (g *groupWorkload) checkOffsets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for p := range int32(logPartitions) {
		out = append(out, checkGroupOffsets(logTopic, p, g.writes[p], g.reads[p])...)
	}
	return out
}
