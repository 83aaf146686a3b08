package device

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// goroutineID is the id of the calling goroutine, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf) // "goroutine 42 [running]:"
	return string(f[1])
}

// idleWorkers counts worker goroutines parked waiting for a request.
func idleWorkers() (idle, all int) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if !bytes.Contains(g, []byte("device.(*Session).worker")) {
			continue
		}
		all++
		if bytes.Contains(g, []byte("[select")) && !bytes.Contains(g, []byte("(*Session).handle")) {
			idle++
		}
	}
	return idle, all
}

// waitWorkers polls until cond holds for the worker counts, for at most
// deadline.
func waitWorkers(t *testing.T, what string, deadline time.Duration, cond func(idle, all int) bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		idle, all := idleWorkers()
		if cond(idle, all) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v (%d idle of %d workers)", what, deadline, idle, all)
		}
		runtime.Gosched()
	}
}

// TestIdleWorkerIsReusedAndExitsWithTheSession: a request that arrives
// while a worker is idle runs on that worker's goroutine, and idle workers
// are gone once Run has returned (well before their idle timeout).
func TestIdleWorkerIsReusedAndExitsWithTheSession(t *testing.T) {
	b := newFakeBroker(t)
	ran := make(chan string, 16)
	stop := startSession(t, testConfig(b, "device-1", ""), handlerFunc(func(_ context.Context, r Request) Response {
		ran <- goroutineID()
		return Response{Status: 200, Payload: r.Payload}
	}))
	fc := b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	var first string
	for i := range 5 {
		if err := fc.request(iothub.MethodRequestTopic("m", strconv.Itoa(i)), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		fc.reply(t)
		g := <-ran
		if i == 0 {
			first = g
		} else if g != first {
			t.Fatalf("request %d ran on goroutine %s; the idle worker was %s", i, g, first)
		}
		waitWorkers(t, "the worker goes idle", 10*time.Second, func(idle, all int) bool { return idle == 1 && all == 1 })
	}
	stop()
	if workerIdle < 20*time.Second {
		t.Fatalf("workerIdle %v: this test needs it well above its 10s wait", workerIdle)
	}
	waitWorkers(t, "workers exit after Run returns", 10*time.Second, func(_, all int) bool { return all == 0 })
}
