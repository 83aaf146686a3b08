package logbatch

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records each Write it receives. When gate is set, the first Write
// reports itself on entered and waits for gate to close.
type sink struct {
	mu      sync.Mutex
	writes  [][]byte
	entered chan struct{}
	gate    chan struct{}
}

func (s *sink) Write(p []byte) (int, error) {
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
		s.gate = nil // only the flusher calls Write: no race
	}
	s.mu.Lock()
	s.writes = append(s.writes, bytes.Clone(p))
	s.mu.Unlock()
	return len(p), nil
}

func (s *sink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(bytes.Join(s.writes, nil))
}

// TestEveryLineOnceInOrder: concurrent writers; after Close every line is
// there exactly once and each writer's lines keep their order.
func TestEveryLineOnceInOrder(t *testing.T) {
	s := &sink{}
	w := New(s)
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(s.all(), "\n"), "\n")
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d line %d", &g, &i); err != nil {
			t.Fatalf("garbled line %q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d came where %d was due", g, i, next[g])
		}
		next[g]++
	}
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
}

// TestLinesWrittenDuringAWriteShareTheNext: while the underlying writer is
// busy with one line, the lines that arrive are written together next.
func TestLinesWrittenDuringAWriteShareTheNext(t *testing.T) {
	s := &sink{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	w := New(s)
	fmt.Fprintln(w, "first")
	<-s.entered // the flusher is inside the underlying Write with "first"
	for i := range 9 {
		fmt.Fprintln(w, "queued", i)
	}
	close(s.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(s.writes) != 2 || string(s.writes[0]) != "first\n" || strings.Count(string(s.writes[1]), "\n") != 9 {
		t.Fatalf("writes = %q, want \"first\\n\" then the 9 queued lines in one write", s.writes)
	}
}

// TestBoundedWhenTheWriterIsStuck: while the underlying writer is stuck,
// a writer that would take the buffer past maxPending waits, and no write
// the underlying writer later receives is larger than that.
func TestBoundedWhenTheWriterIsStuck(t *testing.T) {
	s := &sink{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	w := New(s)
	fmt.Fprintln(w, "first")
	<-s.entered
	line := []byte(strings.Repeat("x", 1023) + "\n")
	n := 3 * maxPending / len(line)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			_, _ = w.Write(line)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		waiting, pending := w.waiting, len(w.pending)
		w.mu.Unlock()
		if waiting == 1 {
			if pending > maxPending {
				t.Fatalf("%d bytes buffered, over %d", pending, maxPending)
			}
			break
		}
		select {
		case <-done:
			t.Fatalf("%d bytes written while the log was stuck: nothing made the writer wait", n*len(line))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer neither waited nor finished within 10s")
		}
		runtime.Gosched()
	}
	close(s.gate)
	<-done
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range s.writes {
		if len(b) > maxPending {
			t.Fatalf("a write of %d bytes: buffering exceeded %d", len(b), maxPending)
		}
		total += len(b)
	}
	if want := len("first\n") + n*len(line); total != want {
		t.Fatalf("%d bytes written, want %d", total, want)
	}
}

// TestWriteAfterCloseGoesThrough: Close is idempotent and later writes are
// not lost.
func TestWriteAfterCloseGoesThrough(t *testing.T) {
	s := &sink{}
	w := New(s)
	fmt.Fprintln(w, "before")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "after")
	if got := s.all(); got != "before\nafter\n" {
		t.Fatalf("got %q", got)
	}
}
