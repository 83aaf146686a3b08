package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/procstat"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// abuseYAML holds commands that misbehave in every way the issue lists.
// Each shell prints its own pid (= its process group, the engine puts every
// command in a new group) on stderr first, so the test can look for what
// the group left behind.
const abuseYAML = `version: 1
defaults: {timeout: 3s, concurrency: 16}
methods:
  print100MB:
    shell: 'echo $$ >&2; head -c 104857600 /dev/zero | tr "\0" x'
  closeStdoutEarly:
    shell: 'echo $$ >&2; exec 1>&-; sleep 0.3; echo still-here >&2'
  neverReadStdin:
    shell: 'echo $$ >&2; sleep 0.3; echo ignored-stdin'
  backgroundChildren:
    shell: 'echo $$ >&2; sleep 60 & sleep 60 </dev/null >/dev/null 2>&1 & echo started'
  exitBySignal:
    shell: 'echo $$ >&2; kill -SEGV $$'
  exitByKill:
    shell: 'echo $$ >&2; kill -KILL $$'
  hangAfterClosingOutput:
    shell: 'echo $$ >&2; exec >&- 2>&-; sleep 60'
  true:
    run: [/bin/true]
`

// abuseCase is one misbehaving call and the status it must get.
type abuseCase struct {
	method  string
	payload []byte
	status  int
}

func abuseCases() []abuseCase {
	big := []byte(`{"blob":"` + strings.Repeat("a", 120*1024) + `"}`)
	return []abuseCase{
		{"print100MB", nil, 200},
		{"closeStdoutEarly", nil, 200},
		{"neverReadStdin", big, 200},
		{"backgroundChildren", nil, 200},
		{"exitBySignal", nil, 500},
		{"exitByKill", nil, 500},
		{"hangAfterClosingOutput", nil, 504},
	}
}

// checkReply asserts one valid JSON reply of at most 128 KB.
func checkReply(t *testing.T, what string, status int, payload []byte, want int) {
	t.Helper()
	if status != want {
		t.Errorf("%s: status %d, want %d (payload %.300s)", what, status, want, payload)
	}
	if len(payload) > engine.MaxReplyBytes {
		t.Errorf("%s: reply of %d bytes, want ≤ %d", what, len(payload), engine.MaxReplyBytes)
	}
	if !json.Valid(payload) {
		t.Errorf("%s: reply is not valid JSON: %.300q", what, payload)
	}
}

// pgidOf reads the group the command reported on stderr (first line).
func pgidOf(payload []byte) int {
	var r struct{ Stderr string }
	if json.Unmarshal(payload, &r) != nil {
		return 0
	}
	first, _, _ := strings.Cut(r.Stderr, "\n")
	n, _ := strconv.Atoi(strings.TrimSpace(first))
	return n
}

// resources is what a leak would grow.
type resources struct{ fds, goroutines int }

func snapshot(t *testing.T) resources {
	t.Helper()
	fds, err := procstat.OpenFDs(0)
	if err != nil {
		t.Fatal(err)
	}
	return resources{fds: fds, goroutines: runtime.NumGoroutine()}
}

// settle waits (bounded) until the fds and goroutines are back to base (or
// below) and no process is left behind; it fails the test with what remains.
func settle(t *testing.T, base resources, pgids map[int]bool, within time.Duration) {
	t.Helper()
	var now resources
	var strays []procstat.Proc
	defer func() { // runs when Eventually fails the test: say what remains
		if !t.Failed() {
			return
		}
		if now.fds > base.fds {
			t.Errorf("open fds %d, was %d", now.fds, base.fds)
		}
		if now.goroutines > base.goroutines {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutines %d, was %d:\n%s", now.goroutines, base.goroutines, buf[:runtime.Stack(buf, true)])
		}
		for _, p := range strays {
			t.Errorf("left behind: pid %d (%s) state %c ppid %d pgid %d", p.PID, p.Comm, p.State, p.PPID, p.PGID)
		}
	}()
	testkit.Eventually(t, within, "fds, goroutines and processes back to where they were", func() bool {
		now = snapshot(t)
		var err error
		if strays, err = procstat.Strays(os.Getpid(), pgids); err != nil {
			t.Fatal(err)
		}
		return now.fds <= base.fds && now.goroutines <= base.goroutines && len(strays) == 0
	})
}

// TestHandlerAbuseEngine runs every misbehaving command through the engine,
// then 10,000 /bin/true calls (8 workers): each call gets one valid reply,
// and afterwards no zombie, no stray process, no extra fd or goroutine.
func TestHandlerAbuseEngine(t *testing.T) {
	eng := newEngine(t, abuseYAML)
	ctx := context.Background()
	// Warm up whatever the runtime and the engine start once.
	eng.Call(ctx, engine.Request{Method: "true", RequestID: "warm"})
	base := snapshot(t)
	pgids := map[int]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range abuseCases() {
		wg.Go(func() {
			start := time.Now()
			rep := eng.Call(ctx, engine.Request{Method: c.method, RequestID: c.method, Payload: c.payload})
			t.Logf("%s: status %d, %d bytes, %v", c.method, rep.Status, len(rep.Payload), time.Since(start).Round(time.Millisecond))
			checkReply(t, c.method, rep.Status, rep.Payload, c.status)
			if time.Since(start) > 10*time.Second {
				t.Errorf("%s took %v, want ≤ 10s (timeout 3s + kill grace)", c.method, time.Since(start))
			}
			if g := pgidOf(rep.Payload); g > 0 {
				mu.Lock()
				pgids[g] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	settle(t, base, pgids, 10*time.Second)

	const calls, workers = 10_000, 8
	start := time.Now()
	var bad sync.Map
	for w := range workers {
		wg.Go(func() {
			for i := w; i < calls; i += workers {
				rep := eng.Call(ctx, engine.Request{Method: "true", RequestID: strconv.Itoa(i)})
				if rep.Status != 200 || !json.Valid(rep.Payload) {
					bad.Store(i, fmt.Sprintf("status %d payload %.200s", rep.Status, rep.Payload))
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d /bin/true calls with %d workers in %v", calls, workers, time.Since(start).Round(time.Millisecond))
	bad.Range(func(k, v any) bool {
		t.Errorf("call %v: %v", k, v)
		return false
	})
	settle(t, base, pgids, 10*time.Second)
}

// TestHandlerAbusePipeline sends the same misbehaving calls through the
// whole pipeline (service call → hub → MQTT → device session → engine →
// reply) while a well-behaved method keeps answering.
func TestHandlerAbusePipeline(t *testing.T) {
	th := startHub(t, deviceID)
	startDaemon(t, th.daemonConfig(t, deviceID, ""), abuseYAML+`  echo:
    reply:
      payload: '{"id": payload.id, "rid": requestId}'
`)
	l := startLoad(th, 2, 50*time.Millisecond, 10)
	var wg sync.WaitGroup
	for _, c := range abuseCases() {
		wg.Go(func() {
			payload := json.RawMessage(c.payload)
			res, herr := th.hub().Invoke(context.Background(), deviceID, "", iothub.MethodRequest{
				MethodName: c.method, Payload: payload, ResponseTimeoutInSeconds: 20})
			if herr != nil {
				t.Errorf("%s: %v", c.method, herr)
				return
			}
			checkReply(t, c.method+" via hub", res.Status, res.Payload, c.status)
		})
	}
	wg.Wait()
	l.stop()
	if l.answered.Load() == 0 || l.lost.Load() != 0 || l.wrong.Load() != 0 {
		t.Errorf("echo beside the abuse: %s, want all answered", l.String())
	}
}
