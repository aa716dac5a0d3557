package txn

import (
	"context"
	"sync"
)

// BlockSource allocates a block of producer ids durably (the controller's
// AllocateProducerIDs): the ids [first, first+count) belong to the caller.
type BlockSource func(ctx context.Context) (first, count int64, err error)

// ProducerIDs hands out producer ids from blocks fetched from a BlockSource.
// It is safe for concurrent use.
type ProducerIDs struct {
	source BlockSource

	mu         sync.Mutex
	next, last int64 // next id to give, and one past the block's end
}

// NewProducerIDs creates an allocator over source.
func NewProducerIDs(source BlockSource) *ProducerIDs {
	return &ProducerIDs{source: source}
}

// Next returns a producer id never handed out before.
func (p *ProducerIDs) Next(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.last {
		first, count, err := p.source(ctx)
		if err != nil {
			return 0, err
		}
		p.next, p.last = first, first+count
	}
	id := p.next
	p.next++
	return id, nil
}
