package device

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/methodd/methodd/iothub"
)

// goroutineID is the id of the calling goroutine, from its stack header.
// Ids are never reused within a process.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf) // "goroutine 42 [running]:"
	return string(f[1])
}

// goroutineExists reports whether goroutine id is alive.
func goroutineExists(id string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte("goroutine "+id+" ["))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// workerSession runs a session inside the caller's synctest bubble whose
// handler reports the goroutine each request runs on, connected and
// subscribed to a pipe broker.
func workerSession(t *testing.T) (fc *fakeConn, ran chan string, stop func()) {
	t.Helper()
	b := newPipeBroker(t)
	ran = make(chan string, 16)
	stop = startSession(t, pipeConfig(b), handlerFunc(func(_ context.Context, r Request) Response {
		ran <- goroutineID()
		return Response{Status: 200, Payload: r.Payload}
	}))
	fc = b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	return fc, ran, stop
}

// call makes request i and returns the goroutine it ran on, once its reply
// has been written and its worker is idle again.
func call(t *testing.T, fc *fakeConn, ran chan string, i int) string {
	t.Helper()
	if err := fc.request(iothub.MethodRequestTopic("m", strconv.Itoa(i)), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	fc.reply(t)
	g := <-ran
	synctest.Wait() // the worker has finished the request and waits for another
	return g
}

// TestIdleWorkerIsReusedUntilWorkerIdle: a request that arrives while a
// worker is idle runs on that worker's goroutine, however close to
// workerIdle it has been idle; once it has been idle for workerIdle, it is
// gone and the next request starts a new worker.
func TestIdleWorkerIsReusedUntilWorkerIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc, ran, stop := workerSession(t)
		first := call(t, fc, ran, 0)
		for i := 1; i < 5; i++ {
			time.Sleep(workerIdle - time.Nanosecond)
			if g := call(t, fc, ran, i); g != first {
				t.Fatalf("request %d, %v after the last one, ran on goroutine %s; the idle worker was %s", i, workerIdle-time.Nanosecond, g, first)
			}
		}
		time.Sleep(workerIdle)
		synctest.Wait()
		if goroutineExists(first) {
			t.Fatalf("worker %s still alive after %v idle", first, workerIdle)
		}
		if g := call(t, fc, ran, 5); g == first {
			t.Fatalf("request after the worker's exit ran on it (%s)", g)
		}
		stop()
	})
}

// TestIdleWorkerExitsWithTheSession: idle workers are gone once Run has
// returned, without waiting for their idle timeout.
func TestIdleWorkerExitsWithTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc, ran, stop := workerSession(t)
		first := call(t, fc, ran, 0)
		if !goroutineExists(first) {
			t.Fatalf("worker %s gone right after its request", first)
		}
		start := time.Now()
		stop()
		synctest.Wait()
		if goroutineExists(first) {
			t.Fatalf("worker %s still alive after Run returned", first)
		}
		if d := time.Since(start); d >= workerIdle {
			t.Fatalf("Run took %v to return: the worker may have left by its idle timeout (%v)", d, workerIdle)
		}
	})
}
