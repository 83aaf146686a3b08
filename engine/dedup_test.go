//go:build linux

package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// countMethods are methods that append a line to $DIR/runs each time their
// command runs and reply {"run": N} with N the lines so far; with
// {"wait":true}, "count" blocks on the gate once it has counted.
func countMethods(g gate, window string) string {
	shell := `echo run >> "$DIR/runs"; n=$(wc -l < "$DIR/runs"); ` +
		`if [ "$METHODD_PARAM_WAIT" = true ]; then echo started > "$DIR/started"; read line < "$DIR/fifo"; fi; ` +
		`echo "{\"run\": $n}"`
	method := `
    params: {wait: {type: boolean, default: false}}
    shell: '` + shell + `'
    env: {DIR: ` + g.dir + `}`
	return "version: 1\ndefaults: {duplicate_window: " + window + "}\nmethods:\n  count:" + method + "\n  other:" + method + "\n"
}

// runs is how many times the count methods' command ran.
func (g gate) runs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir, "runs"))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// ridCall calls method on e as request rid with payload.
func ridCall(t *testing.T, e *Engine, rid, method, payload string) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := e.Call(ctx, Request{Method: method, RequestID: rid, DeviceID: "dev-1", Payload: []byte(payload)})
	checkReply(t, rep)
	return rep
}

// sameReplies fails unless every reply has the status and the bytes of the
// first.
func sameReplies(t *testing.T, reps ...Reply) {
	t.Helper()
	for i, rep := range reps[1:] {
		if rep.Status != reps[0].Status || !bytes.Equal(rep.Payload, reps[0].Payload) {
			t.Errorf("delivery %d: got %d %s, want %d %s as the first", i+2, rep.Status, rep.Payload, reps[0].Status, reps[0].Payload)
		}
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestDuplicateRIDRunsOnce: the same $rid delivered three times, one after
// the other, runs the command once and gets three identical replies.
func TestDuplicateRIDRunsOnce(t *testing.T) {
	g := newGate(t)
	e := New(mustParse(t, countMethods(g, "10m")))
	var reps []Reply
	for range 3 {
		reps = append(reps, ridCall(t, e, "1", "count", `{"a":1}`))
	}
	sameReplies(t, reps...)
	if got := g.runs(t); got != 1 {
		t.Errorf("the command ran %d times, want 1", got)
	}
	if reps[0].Status != 200 || compactJSON(t, string(reps[0].Payload)) != `{"run":1}` {
		t.Errorf("got %d %s, want 200 {\"run\":1}", reps[0].Status, reps[0].Payload)
	}
}

// TestDuplicateRIDWhileRunning: two duplicates that arrive while the first
// delivery's command still runs wait for it: one run, three identical
// replies.
func TestDuplicateRIDWhileRunning(t *testing.T) {
	g := newGate(t)
	e := New(mustParse(t, countMethods(g, "10m")))
	const payload = `{"wait":true}`
	replies := make(chan Reply, 3)
	deliver := func() {
		replies <- e.Call(context.Background(), Request{Method: "count", RequestID: "5", Payload: []byte(payload)})
	}
	go deliver()
	g.started(t)
	go deliver()
	go deliver()
	testkit.Eventually(t, 10*time.Second, "two duplicates to wait for the first delivery", func() bool {
		e.rt.dedup.mu.Lock()
		defer e.rt.dedup.mu.Unlock()
		return e.rt.dedup.waiting == 2
	})
	g.open(t)
	var reps []Reply
	for range 3 {
		reps = append(reps, receive(t, replies))
	}
	sameReplies(t, reps...)
	if got := g.runs(t); got != 1 {
		t.Errorf("the command ran %d times, want 1", got)
	}
	if reps[0].Status != 200 {
		t.Errorf("got %d %s, want 200", reps[0].Status, reps[0].Payload)
	}
}

// TestDuplicateRIDIsKeyedOnMethodAndPayload: a request id used again with
// another method or another payload is a new call; so is a call without a
// request id.
func TestDuplicateRIDIsKeyedOnMethodAndPayload(t *testing.T) {
	g := newGate(t)
	e := New(mustParse(t, countMethods(g, "10m")))
	ridCall(t, e, "1", "count", `{"a":1}`)
	for _, c := range []struct {
		name, rid, method, payload string
		runs                       int
	}{
		{"the same call", "1", "count", `{"a":1}`, 1},
		{"another payload", "1", "count", `{"a":2}`, 2},
		{"the same payload spaced otherwise", "1", "count", `{"a": 1}`, 3},
		{"another method", "1", "other", `{"a":1}`, 4},
		{"another request id", "2", "count", `{"a":1}`, 5},
		{"no request id", "", "count", `{"a":1}`, 6},
		{"no request id again", "", "count", `{"a":1}`, 7},
		{"the first call again", "1", "count", `{"a":1}`, 7},
	} {
		ridCall(t, e, c.rid, c.method, c.payload)
		if got := g.runs(t); got != c.runs {
			t.Errorf("%s: the command has run %d times, want %d", c.name, got, c.runs)
		}
	}
}

// TestDuplicateWindow: a request id is remembered for the window after its
// reply, and runs again from then on; expired calls are dropped lazily.
func TestDuplicateWindow(t *testing.T) {
	g := newGate(t)
	e := New(mustParse(t, countMethods(g, "1m")))
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	e.rt.dedup.now = clock.now
	first := ridCall(t, e, "1", "count", "")
	ridCall(t, e, "2", "count", "")
	clock.advance(time.Minute - time.Nanosecond)
	sameReplies(t, first, ridCall(t, e, "1", "count", ""))
	if got := g.runs(t); got != 2 {
		t.Fatalf("within the window: %d runs, want 2", got)
	}
	clock.advance(time.Nanosecond)
	if rep := ridCall(t, e, "1", "count", ""); compactJSON(t, string(rep.Payload)) != `{"run":3}` {
		t.Errorf("after the window: got %s, want {\"run\":3}", rep.Payload)
	}
	d := e.rt.dedup
	if len(d.calls) != 1 || d.done.Len() != 1 {
		t.Errorf("after the window: %d calls and %d finished remembered, want 1 and 1 (rid 2 dropped)", len(d.calls), d.done.Len())
	}
}

// TestDuplicateWindowOff: a window of zero runs every delivery and
// forgets what was remembered.
func TestDuplicateWindowOff(t *testing.T) {
	g := newGate(t)
	s := mustParse(t, countMethods(g, "10m"))
	e := New(s)
	ridCall(t, e, "1", "count", "")
	off := mustParse(t, countMethods(g, "10m"))
	off.defaults.DuplicateWindow = 0
	e.Swap(off)
	for range 2 {
		ridCall(t, e, "1", "count", "")
	}
	if got := g.runs(t); got != 3 {
		t.Errorf("the command ran %d times, want 3", got)
	}
	if d := e.rt.dedup; len(d.calls) != 0 || d.done.Len() != 0 || d.bytes != 0 {
		t.Errorf("with the window off: %d calls, %d finished, %d bytes remembered, want none", len(d.calls), d.done.Len(), d.bytes)
	}
}

// TestDuplicateSurvivesReload: the memory belongs to the Engine, so a
// duplicate after a reload gets the first reply, from the old Set.
func TestDuplicateSurvivesReload(t *testing.T) {
	set := func(tag string) *Set {
		return mustParse(t, "version: 1\nmethods:\n  hello: {run: [\"true\"], reply: {payload: '{\"set\": \""+tag+"\"}'}}\n")
	}
	e := New(set("A"))
	first := ridCall(t, e, "1", "hello", "")
	e.Swap(set("B"))
	sameReplies(t, first, ridCall(t, e, "1", "hello", ""))
	if rep := ridCall(t, e, "2", "hello", ""); compactJSON(t, string(rep.Payload)) != `{"set":"B"}` {
		t.Errorf("a new request after the reload: got %s, want {\"set\":\"B\"}", rep.Payload)
	}
}

// TestOnlySideEffectsAreRemembered: calls of methods that only compute
// their reply (expressions, ping, catalog, taskStatus) are not remembered
// for duplicates: answering one again is harmless, and remembering it would
// hold its reply for the whole window. A command method's call is.
func TestOnlySideEffectsAreRemembered(t *testing.T) {
	e := New(mustParse(t, "version: 1\nmethods:\n  hello: {reply: {payload: '{\"hi\": payload}'}}\n  touch: {run: [\"true\"]}\n"))
	for range 2 {
		ridCall(t, e, "1", "hello", `"x"`)
		ridCall(t, e, "2", "ping", "")
		ridCall(t, e, "3", "catalog", "")
		ridCall(t, e, "4", "nosuch", "")
	}
	if d := e.rt.dedup; len(d.calls) != 0 || d.done.Len() != 0 || d.bytes != 0 {
		t.Fatalf("after pure calls: %d calls, %d finished, %d bytes remembered, want none", len(d.calls), d.done.Len(), d.bytes)
	}
	ridCall(t, e, "5", "touch", "")
	if d := e.rt.dedup; len(d.calls) != 1 || d.done.Len() != 1 {
		t.Fatalf("after a command call: %d calls, %d finished remembered, want 1", len(d.calls), d.done.Len())
	}
}

// TestDuplicateOwnsItsPayload: the first reply's payload lives in a pooled
// buffer its caller releases, after which a later reply may write over it;
// the duplicate's payload is still the first reply's. A duplicate's payload
// is its own: changing it changes no other.
func TestDuplicateOwnsItsPayload(t *testing.T) {
	e := New(mustParse(t, "version: 1\nmethods:\n  echo: {run: [\"true\"], reply: {payload: '{\"echo\": payload}'}}\n"))
	payload := `"` + strings.Repeat("a", 512) + `"`
	first := ridCall(t, e, "1", "echo", payload)
	if first.lease == nil {
		t.Fatal("the first reply has no pooled buffer: the test proves nothing")
	}
	want := bytes.Clone(first.Payload)
	first.Release()
	// What the next reply leasing the buffer does (the pool may or may not
	// hand it out again; the test does not depend on it).
	copy(first.Payload, bytes.Repeat([]byte("Z"), len(first.Payload)))
	for i := range 4 {
		ridCall(t, e, "other-"+strconv.Itoa(i), "echo", `"`+strings.Repeat("b", 512)+`"`).Release()
	}
	dup := ridCall(t, e, "1", "echo", payload)
	if !bytes.Equal(dup.Payload, want) {
		t.Fatalf("duplicate: got %.40s…, want %.40s…", dup.Payload, want)
	}
	if dup.lease != nil {
		t.Error("the duplicate holds a pooled buffer")
	}
	dup.Payload[2] = 'X'
	dup.Release()
	if again := ridCall(t, e, "1", "echo", payload); !bytes.Equal(again.Payload, want) {
		t.Errorf("after a duplicate's payload changed: got %.40s…, want %.40s…", again.Payload, want)
	}
}

// TestDuplicateAfterRunsOnce: every delivery, the first, a duplicate that
// waited for it and a later one, gets an After, and all of them together
// run the first reply's After once; when the first delivery's reply is
// lost (its After never runs), a duplicate's starts it.
func TestDuplicateAfterRunsOnce(t *testing.T) {
	for _, firstDelivered := range []bool{true, false} {
		d := newDedup()
		r := Request{Method: "m", RequestID: "1", Payload: []byte(`{}`)}
		release := make(chan struct{})
		var started atomic.Int32
		call := func() Reply {
			<-release
			return Reply{Status: 202, Payload: []byte(`{"status":"scheduled"}`), After: func() { started.Add(1) }}
		}
		firstc, waiter := make(chan Reply, 1), make(chan Reply, 1)
		go func() { firstc <- d.do(r, time.Minute, call) }()
		testkit.Eventually(t, 10*time.Second, "the first delivery to be in flight", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return len(d.calls) == 1
		})
		go func() { waiter <- d.do(r, time.Minute, call) }()
		testkit.Eventually(t, 10*time.Second, "the duplicate to wait", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.waiting == 1
		})
		close(release)
		reps := map[string]Reply{"first": <-firstc, "waiting duplicate": <-waiter, "later duplicate": d.do(r, time.Minute, call)}
		for name, rep := range reps {
			if rep.After == nil {
				t.Fatalf("%s got no After", name)
			}
			if rep.Status != 202 || string(rep.Payload) != `{"status":"scheduled"}` {
				t.Errorf("%s: got %d %s, want 202 {\"status\":\"scheduled\"}", name, rep.Status, rep.Payload)
			}
		}
		if firstDelivered {
			reps["first"].After()
		}
		if got := started.Load(); got != map[bool]int32{true: 1, false: 0}[firstDelivered] {
			t.Fatalf("first delivered %v: After ran %d times before the duplicates'", firstDelivered, got)
		}
		var wg sync.WaitGroup
		for _, rep := range reps {
			wg.Go(rep.After)
			wg.Go(rep.After)
		}
		wg.Wait()
		if got := started.Load(); got != 1 {
			t.Errorf("first delivered %v: After ran %d times, want 1", firstDelivered, got)
		}
	}
}

// TestDedupBounds: the oldest finished calls are dropped once more than
// maxEntries, or more than maxBytes, are remembered.
func TestDedupBounds(t *testing.T) {
	payload := []byte(`"` + strings.Repeat("x", 98) + `"`) // 100 bytes
	const size = 100 + 1 + 1                               // payload, rid, method
	for _, c := range []struct {
		name                 string
		maxEntries, maxBytes int
	}{
		{"by count", 3, 1 << 20},
		{"by bytes", 100, 3*size + size/2},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDedup()
			d.maxEntries, d.maxBytes = c.maxEntries, c.maxBytes
			ran := map[string]int{}
			do := func(rid string) {
				d.do(Request{Method: "m", RequestID: rid}, time.Hour, func() Reply {
					ran[rid]++
					return Reply{Status: 200, Payload: payload}
				})
			}
			for _, rid := range []string{"1", "2", "3", "4"} {
				do(rid)
			}
			if d.done.Len() != 3 || len(d.calls) != 3 || d.bytes != 3*size {
				t.Errorf("remembered %d (%d in the map), %d bytes; want 3, 3, %d", d.done.Len(), len(d.calls), d.bytes, 3*size)
			}
			do("4")
			do("2")
			do("1")
			if want := map[string]int{"1": 2, "2": 1, "3": 1, "4": 1}; !equalCounts(ran, want) {
				t.Errorf("runs %v, want %v (rid 1 dropped first)", ran, want)
			}
		})
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDedupPanic: when the first delivery panics, a duplicate waiting for
// it gets a 500, the panic goes on, and the request is not remembered.
func TestDedupPanic(t *testing.T) {
	d := newDedup()
	r := Request{Method: "m", RequestID: "1"}
	release := make(chan struct{})
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		d.do(r, time.Minute, func() Reply { <-release; panic("boom") })
	}()
	testkit.Eventually(t, 10*time.Second, "the first delivery to be in flight", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.calls) == 1
	})
	var wg sync.WaitGroup
	var waited Reply
	wg.Go(func() { waited = d.do(r, time.Minute, func() Reply { t.Error("the duplicate ran"); return Reply{} }) })
	testkit.Eventually(t, 10*time.Second, "the duplicate to wait", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.waiting == 1
	})
	close(release)
	if p := <-panicked; p != "boom" {
		t.Errorf("panic %v, want boom", p)
	}
	wg.Wait()
	if waited.Status != 500 {
		t.Errorf("the waiting duplicate got %d %s, want 500", waited.Status, waited.Payload)
	}
	again := d.do(r, time.Minute, func() Reply { return Reply{Status: 200, Payload: []byte(`1`)} })
	if again.Status != 200 {
		t.Errorf("after the panic: got %d, want the call to run again", again.Status)
	}
}
