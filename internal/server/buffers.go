package server

import "sync"

// Frame buffers are pooled. Ownership: a request frame buffer is owned by its
// request from the read until the request's Completion has returned (the decoded
// body may alias it); the writer then returns it with putBuf. A response buffer
// is owned by the connection's writer. Buffers above maxPooledBufBytes are never
// pooled, so one huge produce does not pin its memory in the pool.
const (
	maxPooledBufBytes = 1 << 20
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

// putBuf returns bp to the pool; bp must not be used afterwards. nil is ignored.
func putBuf(bp *[]byte) {
	if bp == nil || cap(*bp) > maxPooledBufBytes || cap(*bp) == 0 {
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}
