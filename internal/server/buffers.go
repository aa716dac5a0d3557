package server

import "sync"

// Frame buffers are pooled. Ownership: a request frame buffer is owned by its
// request from the read until the request's Completion has returned (the decoded
// body may alias it); the writer then returns it with putBuf. A response buffer
// is owned by the connection's writer. Request frames above maxPooledBufBytes
// go to per-size pools (powers of two up to maxPooledFrameBytes): a producer
// sending multi-megabyte requests (one ~1 MB batch per partition) reuses the
// same buffers instead of allocating, zeroing and regrowing each one. Larger
// buffers are never pooled, so one huge produce does not pin its memory, and
// sync.Pool drops idle buffers at garbage collection, so memory stays flat.
const (
	maxPooledBufBytes = 1 << 20
	// maxPooledFrameBytes is the largest request frame buffer pooled.
	maxPooledFrameBytes = 16 << 20
	// initialBufBytes covers the common small request without regrowth.
	initialBufBytes = 4 << 10
)

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, initialBufBytes)
	return &b
}}

// getBuf returns a buffer of length n.
func getBuf(n int) *[]byte {
	if n > maxPooledBufBytes {
		b := make([]byte, n)
		return &b
	}
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		bufPool.Put(bp)
		b := make([]byte, n)
		return &b
	}
	*bp = (*bp)[:n]
	return bp
}

// framePools[i] holds buffers of capacity maxPooledBufBytes<<(i+1).
var framePools [4]sync.Pool

// frameClass returns the pool of frames of exactly n bytes of capacity, or
// nil when n is not such a size.
func frameClass(n int) *sync.Pool {
	for i := range framePools {
		if n == maxPooledBufBytes<<(i+1) {
			return &framePools[i]
		}
	}
	return nil
}

// frameCap is the capacity to allocate for a large frame buffer of n bytes:
// the next pooled size, or n itself above them.
func frameCap(n int) int {
	for c := maxPooledBufBytes << 1; c <= maxPooledFrameBytes; c <<= 1 {
		if n <= c {
			return c
		}
	}
	return n
}

// getFrame returns a pooled buffer of length n (> maxPooledBufBytes) when
// one is idle, else nil: it never allocates, so a frame's length field
// cannot make the server allocate (see readFrameBody).
func getFrame(n int) *[]byte {
	p := frameClass(frameCap(n))
	if p == nil {
		return nil
	}
	bp, _ := p.Get().(*[]byte)
	if bp != nil {
		*bp = (*bp)[:n]
	}
	return bp
}

// putBuf returns bp to the pool; bp must not be used afterwards. nil is ignored.
func putBuf(bp *[]byte) {
	if bp == nil || cap(*bp) == 0 {
		return
	}
	if cap(*bp) > maxPooledBufBytes {
		if p := frameClass(cap(*bp)); p != nil {
			*bp = (*bp)[:0]
			p.Put(bp)
		}
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}
