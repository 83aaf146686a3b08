package engine

import "sync/atomic"

// limiter bounds the number of concurrent calls of one method. Over the
// limit a call is refused at once (429), never queued.
type limiter struct {
	max int64
	n   atomic.Int64
}

func newLimiter(n int) *limiter { return &limiter{max: int64(n)} }

// acquire takes a slot; false means the method is busy.
func (l *limiter) acquire() bool {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		return false
	}
	return true
}

// release gives back a slot taken by acquire.
func (l *limiter) release() { l.n.Add(-1) }
