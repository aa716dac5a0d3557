// Package controller runs the metadata quorum: it wires hashicorp/raft (its
// log, stable and snapshot stores are ours, on the vfs seam: raftstore.go,
// snapstore.go; a TCP transport on the controller address) to the metadata
// state machine, publishes the resulting
// immutable *metadata.Image to the rest of the node, and, on the Raft leader
// (the active controller), turns commands (create topic, alter configs,
// allocate producer ids, ...) into metadata records.
//
// A single node is a Raft cluster of one voter and runs the same code as a
// larger quorum.
//
// # Quorum and bootstrap
//
// Voters come from controller.quorum.voters. A voter whose Raft stores are
// empty bootstraps exactly that list (its own entry included, as written, not
// its bound address), so every voter bootstraps the same configuration and
// hashicorp/raft treats the repeated bootstraps as one. The cluster id is the
// ClusterRecord the first leader commits; every node adopts it from the log.
// A node whose data directory is formatted (meta.properties, written by the
// node once it knows the cluster id) but whose Raft stores are empty lost its
// metadata log: Open refuses it (ErrMetadataLost) instead of bootstrapping a
// second cluster or voting with a forgotten vote.
// A voter with a new data directory whose node found the quorum running
// (Config.Rejoin) does not bootstrap, and its transport refuses vote
// requests until WaitReady has seen it catch up, then those for terms up
// to the one it caught up in.
//
// # Quorum membership (quorum.go)
//
// Broker-only nodes are Raft non-voters (Config.Observer): they never
// bootstrap, and the active controller adds them (AddObserver) when they
// register. A controller joining a running quorum (Config.Join) waits for
// AddVoter (KIP-853 AddRaftVoter); RemoveVoter removes one. Configuration
// changes run under the command lock like commands. The Raft transport is
// wrapped (progressTransport) to record each follower's log end from its
// AppendEntries answers, for Quorum (DescribeQuorum), and the commit index
// it acknowledged, which topic changes wait for (awaitFollowersCommit; a
// follower holds that acknowledgement until its image has applied the
// entries, holdUntilApplied), and to filter vote requests; pipelining is off so every answer passes
// through it.
//
// # Controller listener
//
// One port carries Raft (connections opened by Gregor's Raft dialer with a
// preamble byte) and Kafka's broker-to-controller requests (everything else),
// split by the first byte (transport.go); KafkaListener hands the second kind
// to a Kafka server. Broker membership (membership.go): registrations write a
// fenced RegisterBroker record, heartbeats unfence, and the active controller
// fences a broker whose heartbeats stop for broker.session.timeout.ms; the
// heartbeat times are in memory and restart with each Raft term.
// AlterPartition (isr.go) applies a partition leader's ISR change after
// Kafka's checks: current broker epoch, leader, leader epoch and partition
// epoch (a stale leader's change is refused), an ISR of replicas holding
// the leader, unfenced new members. Leader election (election.go) follows
// Kafka's KRaft controller: fencing a broker (session expiry or a
// controlled shutdown's heartbeat) or its registering again drops it from
// every ISR it is in, in the same batch, and a partition it led gets the
// first unfenced ISR member in replica order (leader and partition epochs
// bumped); the last ISR member is kept and its partition left offline
// (leader -1) until that member is unfenced, which elects it, unless
// unclean.leader.election.enable holds for the topic: then the first
// unfenced out-of-sync replica leads and is the whole ISR (at fencing, at
// unfencing and at every session check of the active controller).
//
// Placement (placement.go) gives new partitions replicas on unfenced
// brokers: rack-aware (distinct racks while racks remain), then balanced by
// the cluster's counts of preferred leaders and replicas per broker.
//
// Partition reassignment (reassign.go) follows KRaft: the target replicas
// are added with adding/removing replicas in the partition, and the ISR
// change that holds every target completes it; UnregisterBroker removes a
// registration after the broker leaves every ISR.
//
// # Commands
//
// Commands run one at a time on the active controller (the command lock,
// c.sem). Each command decides on the image that results from every earlier
// command, validates its records by applying them to a scratch copy of that
// image, proposes them as one Raft log entry (a batch, applied
// all-or-nothing) and waits until the entry is applied. If the caller's
// context ends first the call returns ctx.Err() while the lock stays held
// until Raft resolves the entry, so the next command still sees its outcome.
// The first command in a new Raft term first issues a Barrier, so a new
// leader never decides on an image that lags what earlier leaders committed.
//
// Commands are control-plane operations (topic and config changes, producer
// id blocks, ISR changes); one at a time keeps every decision trivially
// consistent at a cost of one Raft commit latency each.
//
// # Goroutines
//
// Besides Raft's own: the leadership loop (writes the ClusterRecord when the
// image has none), the subscriber dispatcher (calls Subscribe callbacks in
// apply order), the fence loop (expires broker sessions, and elects
// uncleanly where allowed, on the active controller), the rebalance loop
// (auto.leader.rebalance.enable: preferred elections every
// leader.imbalance.check.interval.seconds; not started when disabled), the
// controller listener's accept loop with one router per
// connection until its first byte arrives (bounded by sniffTimeout), and one
// waiter per outstanding Raft future whose caller gave up; all stop by Close,
// the waiters because Raft shutdown resolves every future, and the
// transport's RPC filter (stopped by closing stopc).
//
// # Lock order
//
// sem (command lock) before mu and members; subMu, notifyMu and members are
// leaves. None is held
// while calling a subscriber.
package controller
