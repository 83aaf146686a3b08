//go:build linux

package engine

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// gate is a fifo a command blocks on until the test opens it.
type gate struct {
	dir string
}

func newGate(t *testing.T) gate {
	t.Helper()
	g := gate{dir: t.TempDir()}
	if err := syscall.Mkfifo(filepath.Join(g.dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// waitMethod is a method that, with {"wait":true}, writes "started" and
// blocks until the gate opens; the reply payload names the set (tag).
func waitMethod(g gate, tag string, concurrency int) string {
	return `
version: 1
methods:
  slow:
    concurrency: ` + strconv.Itoa(concurrency) + `
    params: {wait: {type: boolean, default: false}}
    shell: 'if [ "$METHODD_PARAM_WAIT" = true ]; then echo started > "$DIR/started"; read line < "$DIR/fifo"; fi'
    env: {DIR: ` + g.dir + `}
    reply: {payload: '{"set": "` + tag + `", "exitCode": exitCode}'}
`
}

// started waits until the blocked call has started.
func (g gate) started(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the first call to start", func() bool { return fileExists(filepath.Join(g.dir, "started")) })
}

// open releases the blocked call.
func (g gate) open(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(g.dir, "fifo"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("go\n")
	f.Close()
}

// startBlocked makes a blocking call in a goroutine; the channel gets its reply.
func startBlocked(t *testing.T, c interface {
	Call(context.Context, Request) Reply
}, g gate) <-chan Reply {
	done := make(chan Reply, 1)
	go func() {
		done <- c.Call(context.Background(), Request{Method: "slow", Payload: []byte(`{"wait":true}`)})
	}()
	g.started(t)
	return done
}

func receive(t *testing.T, ch <-chan Reply) Reply {
	t.Helper()
	select {
	case rep := <-ch:
		checkReply(t, rep)
		return rep
	case <-time.After(20 * time.Second):
		t.Fatal("blocked call never finished")
	}
	return Reply{}
}

// TestConcurrencyLimit: with concurrency 1 a second call while the first
// runs gets 429 at once; a third after the first finishes succeeds.
func TestConcurrencyLimit(t *testing.T) {
	g := newGate(t)
	s := mustParse(t, waitMethod(g, "A", 1))
	first := startBlocked(t, s, g)
	if rep := call(t, s, "slow", ""); rep.Status != 429 || !strings.Contains(string(rep.Payload), "busy") {
		t.Errorf("second call: got %d %s, want 429 busy", rep.Status, rep.Payload)
	}
	g.open(t)
	if rep := receive(t, first); rep.Status != 200 {
		t.Errorf("first call: got %d %s", rep.Status, rep.Payload)
	}
	if rep := call(t, s, "slow", ""); rep.Status != 200 {
		t.Errorf("third call: got %d %s, want 200", rep.Status, rep.Payload)
	}
}

// TestSwapKeepsLimiterAndInFlightSet: a reload that keeps a method's
// concurrency keeps its limiter (the in-flight call still counts), the
// in-flight call finishes on the set it started with, and a reload that
// changes the limit starts a fresh limiter.
func TestSwapKeepsLimiterAndInFlightSet(t *testing.T) {
	g := newGate(t)
	e := New(mustParse(t, waitMethod(g, "A", 1)))
	first := startBlocked(t, e, g)

	old := e.Swap(mustParse(t, waitMethod(g, "B", 1)))
	if old == nil || old == e.Current() {
		t.Fatal("Swap did not return the previous set")
	}
	// tcall: a fresh request id each time, or the Engine would answer
	// the second call from its memory of the first (duplicate ids).
	if rep := tcall(t, e, "slow", ""); rep.Status != 429 {
		t.Errorf("after a reload with the same limit: got %d %s, want 429", rep.Status, rep.Payload)
	}
	e.Swap(mustParse(t, waitMethod(g, "C", 2)))
	if rep := tcall(t, e, "slow", ""); rep.Status != 200 || !strings.Contains(string(rep.Payload), `"set":"C"`) {
		t.Errorf("after a reload with a new limit: got %d %s, want 200 from set C", rep.Status, rep.Payload)
	}
	g.open(t)
	if rep := receive(t, first); rep.Status != 200 || !strings.Contains(string(rep.Payload), `"set":"A"`) {
		t.Errorf("in-flight call: got %d %s, want 200 from set A", rep.Status, rep.Payload)
	}
}

// TestEngineWithoutSet: an Engine with no Set answers 503.
func TestEngineWithoutSet(t *testing.T) {
	e := New(nil)
	if rep := call(t, e, "ping", ""); rep.Status != 503 {
		t.Errorf("got %d %s, want 503", rep.Status, rep.Payload)
	}
	s := mustParse(t, "version: 1\n")
	if old := e.Swap(s); old != nil || e.Current() != s {
		t.Errorf("Swap: old %v current %v", old, e.Current())
	}
	if rep := call(t, e, "ping", ""); rep.Status != 200 {
		t.Errorf("ping after Swap: got %d %s", rep.Status, rep.Payload)
	}
}

// TestConcurrentCallsAndSwaps exercises Call and Swap together under -race.
func TestConcurrentCallsAndSwaps(t *testing.T) {
	src := "version: 1\nmethods:\n  echo: {reply: {payload: payload}}\n"
	e := New(mustParse(t, src))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			e.Swap(mustParse(t, src))
		}
	}()
	for range 200 {
		if rep := tcall(t, e, "echo", `[1]`); rep.Status != 200 || string(rep.Payload) != "[1]" {
			t.Fatalf("got %d %s", rep.Status, rep.Payload)
		}
	}
	<-done
}
