package engine

import (
	"context"
	"sync"
	"sync/atomic"
)

// Engine serves calls from the active Set and swaps it on reload. Call
// loads the active Set once, so a call in flight finishes on the Set it
// started with; Swap is the commit of the reload transaction.
type Engine struct {
	mu  sync.Mutex // serialises Swap
	cur atomic.Pointer[Set]
	rt  *shared // shared by every Set served: tasks outlive reloads
}

// New returns an Engine serving s (which may be nil: calls then get 503).
func New(s *Set) *Engine {
	e := &Engine{rt: newShared()}
	if s != nil {
		s.adopt(e.rt)
	}
	e.cur.Store(s)
	return e
}

// Swap makes s the active Set and returns the previous one. Methods of s
// whose concurrency limit is unchanged keep the previous Set's limiter, so
// calls still running on the old Set count against the limit (a reload never
// lets a concurrency-1 method run twice). s must not be serving calls yet.
func (e *Engine) Swap(s *Set) (old *Set) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old = e.cur.Load()
	if s != nil && old != nil && s != old {
		s.adoptLimiters(old)
	}
	if s != nil {
		s.adopt(e.rt)
	}
	e.cur.Store(s)
	return old
}

// Current returns the active Set (nil when none).
func (e *Engine) Current() *Set { return e.cur.Load() }

// Knows reports whether method is a method of the active Set, built-ins
// included (false when no Set is active). A reload may change the answer
// between Knows and a Call.
func (e *Engine) Knows(method string) bool {
	s := e.cur.Load()
	return s != nil && s.methods[method] != nil
}

// RunningTasks is the number of tasks of async methods running now, across
// reloads (0 when the active Set has no async method and none was left
// running by an earlier one). Safe for concurrent use.
func (e *Engine) RunningTasks() int { return e.rt.tasks.running() }

// Call runs r on the active Set; with no Set it replies 503.
func (e *Engine) Call(ctx context.Context, r Request) Reply {
	s := e.cur.Load()
	if s == nil {
		return errorReply(503, "no handlers are loaded")
	}
	if !s.sideEffects(r.Method) {
		return s.Call(ctx, r)
	}
	return e.rt.dedup.do(r, s.defaults.DuplicateWindow, func() Reply { return s.Call(ctx, r) })
}

// Close cancels the running tasks of async methods (their process groups
// are killed as at a timeout) and waits for them to end, at most until ctx
// is done; new async calls are then answered 503. The daemon calls it at
// shutdown, after draining calls. Other calls keep working.
func (e *Engine) Close(ctx context.Context) error { return e.rt.tasks.close(ctx) }
