// Package logbatch lets a busy daemon write its log without one system call
// per line: Write copies the line into a buffer and returns, and one
// goroutine writes whatever has accumulated to the underlying writer as soon
// as it can. When lines come one at a time each is written on its own a few
// microseconds later; when they come faster than one write(2) completes,
// they share writes. Order is kept: bytes reach the underlying writer in the
// order Write was called.
//
// The cost is that a line is not yet on the underlying writer when Write
// returns; Close writes everything still buffered. A crash can
// lose what was written in the last moments before it — the few lines the
// flusher had not picked up yet.
package logbatch

import (
	"io"
	"sync"
)

// maxPending bounds the buffered bytes: a Write that would pass it waits
// for the flusher, so a log that cannot keep up slows its writers instead
// of growing without bound.
const maxPending = 1 << 20

// Writer batches writes to an io.Writer. Use New; it is safe for
// concurrent use.
type Writer struct {
	w io.Writer

	mu      sync.Mutex
	space   sync.Cond // signalled when the flusher took the pending bytes
	pending []byte    // written by Write, not yet taken by the flusher
	closed  bool
	waiting int // writers blocked for want of space

	wake chan struct{} // cap 1: there is something to flush, or Close was called
	done chan struct{} // closed when the flusher has exited
}

// New starts a Writer on w. Call Close to flush and stop it.
func New(w io.Writer) *Writer {
	b := &Writer{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.space.L = &b.mu
	go b.flusher()
	return b
}

// Write buffers p and returns len(p), nil; errors of the underlying writer
// are not reported (a log has nowhere to report them). After Close, p is
// written through at once, after everything buffered before.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	for !b.closed && len(b.pending) > 0 && len(b.pending)+len(p) > maxPending {
		b.waiting++
		b.space.Wait()
		b.waiting--
	}
	if b.closed { // the flusher may be gone: write through, after what it had
		b.mu.Unlock()
		<-b.done
		return b.w.Write(p)
	}
	b.pending = append(b.pending, p...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is already pending; it will see these bytes
	}
	return len(p), nil
}

// Close flushes what is buffered and stops the flusher; later writes go
// straight through. It is safe to call more than once.
func (b *Writer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-b.done
	return nil
}

// flusher writes the pending bytes whenever there are any, and exits once
// closed and empty. Two buffers alternate so that writers append to one
// while the other is being written.
func (b *Writer) flusher() {
	defer close(b.done)
	var spare []byte
	for range b.wake {
		for {
			b.mu.Lock()
			out := b.pending
			if len(out) == 0 {
				closed := b.closed
				b.mu.Unlock()
				if closed {
					return
				}
				break
			}
			b.pending = spare[:0]
			b.space.Broadcast()
			b.mu.Unlock()
			_, _ = b.w.Write(out)
			if cap(out) <= maxPending {
				spare = out
			} else {
				spare = nil
			}
		}
	}
}
