package statelog

import (
	"context"
	"errors"
	"log/slog"
	"runtime/pprof"
	"sync"
	"time"
)

// OwnerConfig configures an Owner.
type OwnerConfig struct {
	// Name names the coordinator in logs and goroutine labels.
	Name string
	// Partitions is the state topic's partition count.
	Partitions int32
	// Log returns the Log of partition p when this node leads it, nil
	// otherwise. The owner compares its Epoch with the loaded one.
	Log func(p int32) Log
	// Leads reports whether the metadata names this node partition p's
	// leader (nil: never). Until Log returns its Log (the replica is
	// opened after the metadata changes), p counts as loading, not led
	// elsewhere: a client that found this node the coordinator through
	// another broker's newer metadata is told to wait, not to look again.
	Leads func(p int32) bool
	// Load replays l into the coordinator's state of partition p and
	// makes it serve; an error leaves it unloaded, retried later.
	Load func(ctx context.Context, p int32, l Log) error
	// Unload drops the coordinator's state of partition p: parked
	// requests are answered NOT_COORDINATOR, later ones too.
	Unload func(p int32)
	Logger *slog.Logger
	// Recheck is how often leadership is compared with what is loaded
	// even without Update (a load that failed is retried then); 0 is 1 s.
	Recheck time.Duration
}

// Owner loads a coordinator's partitions when this node becomes their
// leader and unloads them when leadership moves, on one goroutine.
// Update (after each metadata change) wakes it; it also rechecks every
// Recheck, which bounds how long a missed wake-up or a failed load lasts.
type Owner struct {
	cfg    OwnerConfig
	ctx    context.Context // cancelled by Close: ends a load in progress
	cancel context.CancelFunc
	kick   chan struct{}
	stopc  chan struct{}
	donec  chan struct{}

	mu struct {
		sync.Mutex
		loaded  map[int32]Log // partitions serving, by the Log they loaded
		loading map[int32]bool
		// changed is closed and replaced whenever a load ends.
		changed chan struct{}
		started bool
	}
}

// NewOwner makes an owner; Start runs it.
func NewOwner(cfg OwnerConfig) *Owner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = time.Second
	}
	o := &Owner{cfg: cfg, kick: make(chan struct{}, 1), stopc: make(chan struct{}), donec: make(chan struct{})}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.mu.loaded = map[int32]Log{}
	o.mu.loading = map[int32]bool{}
	o.mu.changed = make(chan struct{})
	return o
}

// Start loads what this node leads now, before it returns (so a node
// serves its coordinators' state from its first request), then follows
// leadership on its goroutine until Close.
func (o *Owner) Start() {
	o.mu.Lock()
	o.mu.started = true
	o.mu.Unlock()
	for p := range o.cfg.Partitions {
		o.reconcile(p)
	}
	go func() {
		defer close(o.donec)
		pprof.Do(context.Background(), pprof.Labels("coordinator", o.cfg.Name), func(ctx context.Context) { o.run() })
	}()
	o.Update()
}

// Close stops the owner and unloads every partition.
func (o *Owner) Close() {
	o.mu.Lock()
	started := o.mu.started
	o.mu.started = false
	o.mu.Unlock()
	o.cancel()
	if started {
		close(o.stopc)
		<-o.donec
	}
	o.mu.Lock()
	var ps []int32
	for p := range o.mu.loaded {
		ps = append(ps, p)
	}
	o.mu.loaded = map[int32]Log{}
	o.mu.Unlock()
	for _, p := range ps {
		o.cfg.Unload(p)
	}
}

// Update asks the owner to compare leadership with what is loaded (after a
// metadata change). It never blocks.
func (o *Owner) Update() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Log returns partition p's Log when it is loaded here; otherwise
// ErrLoading when this node leads p (its load is running or about to, or
// its replica is about to open) and ErrNotLeader when it does not.
func (o *Owner) Log(p int32) (Log, error) {
	o.mu.Lock()
	l, ok := o.mu.loaded[p]
	loading := o.mu.loading[p]
	o.mu.Unlock()
	switch {
	case ok:
		return l, nil
	case loading:
		return nil, ErrLoading
	case o.cfg.Log(p) != nil, o.cfg.Leads != nil && o.cfg.Leads(p):
		o.Update()
		return nil, ErrLoading
	}
	return nil, ErrNotLeader
}

// WaitLoaded is Log, waiting while p is (about to be) loading.
func (o *Owner) WaitLoaded(ctx context.Context, p int32) (Log, error) {
	for {
		o.mu.Lock()
		changed := o.mu.changed
		o.mu.Unlock()
		l, err := o.Log(p)
		if !errors.Is(err, ErrLoading) {
			return l, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (o *Owner) run() {
	t := time.NewTicker(o.cfg.Recheck)
	defer t.Stop()
	for {
		select {
		case <-o.stopc:
			return
		case <-o.kick:
		case <-t.C:
		}
		for p := range o.cfg.Partitions {
			select {
			case <-o.stopc:
				return
			default:
			}
			o.reconcile(p)
		}
	}
}

// reconcile brings partition p in line with leadership: unload what is
// no longer led here (or led under another leadership), load what is.
func (o *Owner) reconcile(p int32) {
	want := o.cfg.Log(p)
	o.mu.Lock()
	cur, ok := o.mu.loaded[p]
	stale := ok && (want == nil || !sameLeadership(cur, want))
	if stale {
		delete(o.mu.loaded, p)
	}
	o.mu.Unlock()
	if stale {
		o.cfg.Logger.Info("unloading coordinator partition", "coordinator", o.cfg.Name, "partition", p,
			"epoch", cur.Epoch())
		o.cfg.Unload(p)
		ok = false
	}
	if ok || want == nil {
		return
	}
	o.mu.Lock()
	o.mu.loading[p] = true
	o.mu.Unlock()
	start := time.Now()
	err := o.cfg.Load(o.ctx, p, want)
	o.mu.Lock()
	delete(o.mu.loading, p)
	if err == nil {
		o.mu.loaded[p] = want
	}
	close(o.mu.changed)
	o.mu.changed = make(chan struct{})
	o.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrNotLeader) {
			o.cfg.Logger.Warn("loading coordinator partition failed", "coordinator", o.cfg.Name, "partition", p,
				"err", err)
		}
		return
	}
	o.cfg.Logger.Info("loaded coordinator partition", "coordinator", o.cfg.Name, "partition", p,
		"epoch", want.Epoch(), "duration", time.Since(start).String())
}

// sameLeadership reports whether want, the Log leadership offers now, stands
// for the leadership cur was loaded under: the same epoch it began in, over
// the same partition (a partition deleted and made again restarts its
// epochs).
func sameLeadership(cur, want Log) bool {
	if cur.Epoch() != want.Epoch() {
		return false
	}
	switch c := cur.(type) {
	case *Replica:
		w, ok := want.(*Replica)
		return ok && w.p == c.p
	case *Memory:
		w, ok := want.(*Memory)
		return ok && w.d == c.d
	}
	return true
}
