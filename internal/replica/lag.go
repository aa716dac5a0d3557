package replica

// MaxFollowerLag is, on a partition this node leads, the largest number of
// messages a replica's log is behind the leader's log end (a follower that
// has not fetched in the leader's current epoch counts from offset 0); ok
// is false on a follower or with no other replica.
func (p *Partition) MaxFollowerLag() (lag int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.follower.Load() || p.mu.closed {
		return 0, false
	}
	leo := p.log.LogEndOffset()
	for _, id := range p.mu.replicas {
		if id == p.nodeID {
			continue
		}
		lag, ok = max(lag, leo-p.mu.followerLEO[id]), true
	}
	return lag, ok
}
