package reliability

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/daemon"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// deviceID is the identity every test daemon runs as.
const deviceID = "rel-device"

// echoYAML is the daemon's handlers file under load: echo answers with the
// call's own id and $rid, so a reply that belongs to another call is seen.
const echoYAML = `version: 1
defaults: {timeout: 10s, concurrency: 256}
methods:
  echo:
    reply:
      payload: '{"id": payload.id, "rid": requestId}'
`

// testHub is a local hub on fixed loopback ports that can be restarted on
// the same directory and ports.
type testHub struct {
	t    testing.TB
	opts localhub.Options
	cur  atomic.Pointer[localhub.Hub]
	info localhub.Info
	mu   sync.Mutex // serialises restarts
}

func startHub(t testing.TB, devices ...string) *testHub {
	t.Helper()
	opts := localhub.Options{Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: devices}
	h, err := localhub.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	th := &testHub{t: t, opts: opts, info: h.Info()}
	// Restarts reuse the ports the first start picked.
	th.opts.MQTTAddr, th.opts.HTTPSAddr = th.info.MQTTAddr, th.info.HTTPSAddr
	th.cur.Store(h)
	t.Cleanup(func() { th.hub().Close() })
	return th
}

func (h *testHub) hub() *localhub.Hub { return h.cur.Load() }

// restart closes the hub and starts it again on the same dir and ports.
// It retries Start while the ports are still being released, and fails the
// test if the hub is not up again within 10 s. It must be called from the
// test's goroutine.
func (h *testHub) restart() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.hub().Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	testkit.Eventually(h.t, 10*time.Second, "the hub to start again on its ports", func() bool {
		n, err := localhub.Start(context.Background(), h.opts)
		if err != nil {
			return false
		}
		h.cur.Store(n)
		return true
	})
	return nil
}

func (h *testHub) roots(t testing.TB) *x509.CertPool { return testkit.CertPool(t, h.info.CAFile) }

// daemonConfig is the device config `methodd run` builds
// (internal/cli/run.go deviceConfig: all timing fields at their defaults),
// for identity id of h. gateway, if set, is the GatewayHostName to dial
// instead (a fault proxy).
func (h *testHub) daemonConfig(t testing.TB, id, gateway string) device.Config {
	t.Helper()
	cs, err := iothub.ParseDeviceConnectionString(h.info.Devices[id])
	if err != nil {
		t.Fatalf("identity %s: %v", id, err)
	}
	if gateway != "" {
		cs.GatewayHostName = gateway
	}
	return device.Config{Identity: cs, RootCAs: h.roots(t), ProductInfo: "methodd/reliability"}
}

// wait blocks for d. It paces loops and injects faults at chosen moments;
// it never stands in for waiting on a condition.
func wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

// stateLog records a session's state changes with their times.
type stateLog struct {
	mu  sync.Mutex
	all []stamped
	ch  chan struct{} // pinged on every change
}

type stamped struct {
	device.State
	at time.Time
}

func newStateLog() *stateLog { return &stateLog{ch: make(chan struct{}, 1)} }

func (l *stateLog) record(s device.State) {
	l.mu.Lock()
	l.all = append(l.all, stamped{s, time.Now()})
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

// waitFor waits until a state of kind k recorded after since appears, at
// most within; it returns when it was recorded.
func (l *stateLog) waitFor(k device.StateKind, since time.Time, within time.Duration) (time.Time, bool) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, s := range l.all {
			if s.Kind == k && !s.at.Before(since) {
				l.mu.Unlock()
				return s.at, true
			}
		}
		l.mu.Unlock()
		select {
		case <-l.ch:
		case <-deadline.C:
			return time.Time{}, false
		}
	}
}

func newEngine(t testing.TB, yaml string) *engine.Engine {
	t.Helper()
	set, err := engine.Parse("handlers.yaml", []byte(yaml), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(set)
}

// handlersFile writes yaml as handlers.yaml in a fresh private directory
// and loads it as `methodd run` does at start-up (the one load path,
// permission check included).
func handlersFile(t testing.TB, yaml string) (string, handlersfile.Loaded, handlersfile.Options) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handlers.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := handlersfile.Options{DaemonUID: os.Geteuid()}
	l, err := handlersfile.Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if l.Unsafe != nil {
		t.Fatalf("handlers file refused: %v", l.Unsafe)
	}
	return path, l, opts
}

// daemonEnv is the environment of an in-process daemon: GOGC as the test
// was given it (an operator's GOGC wins over the daemon's default, as for
// `methodd run`), and nothing of systemd's, so that a test run under a
// service manager never notifies it.
func daemonEnv(key string) string {
	if key == "GOGC" {
		return os.Getenv(key)
	}
	return ""
}

// runningDaemon is an in-process `methodd run` (daemon.Run) and the state
// changes of its device session.
type runningDaemon struct {
	states *stateLog
	stop   func()
}

// startDaemon runs daemon.Run with device config cfg serving yaml until the
// test ends (or stop is called) and waits for its session to connect.
func startDaemon(t testing.TB, cfg device.Config, yaml string) *runningDaemon {
	t.Helper()
	d := &runningDaemon{states: newStateLog()}
	path, loaded, opts := handlersFile(t, yaml)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Path: path, Loaded: loaded, Load: opts, Device: cfg,
			Getenv: daemonEnv, OnState: d.states.record})
	}()
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30s")
			}
		})
	}
	t.Cleanup(d.stop)
	start := time.Now()
	if _, ok := d.states.waitFor(device.Connected, start.Add(-time.Second), 15*time.Second); !ok {
		t.Fatal("daemon not connected within 15s")
	}
	return d
}

// counts are the outcome of a run of calls.
type counts struct {
	sent, answered, wrong, lost atomic.Int64
	firstWrong                  atomic.Value // string
	lastLost                    atomic.Value // string: why the last lost call was lost
}

func (c *counts) String() string {
	s := fmt.Sprintf("sent=%d answered=%d wrong=%d lost=%d", c.sent.Load(), c.answered.Load(), c.wrong.Load(), c.lost.Load())
	if why := c.lastLost.Load(); why != nil {
		s += fmt.Sprintf(" (last lost: %v)", why)
	}
	return s
}

// callEcho makes one echo call with a unique id through hub and classifies
// the outcome. It reports whether the call was answered correctly.
// connectSec is the call's connectTimeoutInSeconds: how long the hub waits
// for the device to be online.
func callEcho(ctx context.Context, hub *localhub.Hub, id string, timeoutSec, connectSec int, c *counts) bool {
	c.sent.Add(1)
	res, herr := hub.Invoke(ctx, deviceID, "", iothub.MethodRequest{MethodName: "echo",
		Payload:                  json.RawMessage(fmt.Sprintf(`{"id":%q}`, id)),
		ResponseTimeoutInSeconds: timeoutSec, ConnectTimeoutInSeconds: connectSec})
	if herr != nil {
		c.lost.Add(1)
		c.lastLost.Store(herr.Error())
		return false
	}
	var got struct {
		ID  string `json:"id"`
		RID string `json:"rid"`
	}
	if res.Status != 200 || json.Unmarshal(res.Payload, &got) != nil || got.ID != id || got.RID == "" {
		c.wrong.Add(1)
		c.firstWrong.CompareAndSwap(nil, fmt.Sprintf("call %s got status %d payload %s", id, res.Status, res.Payload))
		return false
	}
	c.answered.Add(1)
	return true
}

// load runs workers that call echo until stopped, each pacing its calls
// every interval (0: back to back). hub is read before every call so that
// restarts are followed. Calls wait up to 5 s for the device to be online
// (connectTimeoutInSeconds), as a patient service would: a call is lost
// when the fault hit it in flight or outlasted that wait.
type load struct {
	counts
	wg     sync.WaitGroup
	cancel func()
	seq    atomic.Int64
	// gate is held shared by each call in flight; quiesce takes it
	// exclusively so that nothing is in flight while it holds it.
	gate sync.RWMutex
}

// quiesce waits for the calls in flight to finish, holds new ones back
// while f runs, then lets the load go on.
func (l *load) quiesce(f func()) {
	l.gate.Lock()
	defer l.gate.Unlock()
	f()
}

func startLoad(th *testHub, workers int, interval time.Duration, timeoutSec int) *load {
	stop := make(chan struct{})
	l := &load{cancel: sync.OnceFunc(func() { close(stop) })}
	for w := range workers {
		l.wg.Go(func() {
			var tick *time.Ticker
			if interval > 0 {
				tick = time.NewTicker(interval)
				defer tick.Stop()
			}
			for i := range 10_000_000 {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d-%d", w, i, l.seq.Add(1))
				// Calls are never cancelled: stop lets the ones in flight finish.
				l.gate.RLock()
				callEcho(context.Background(), th.hub(), id, timeoutSec, 5, &l.counts)
				l.gate.RUnlock()
				if tick != nil {
					select {
					case <-tick.C:
					case <-stop:
					}
				}
			}
		})
	}
	return l
}

// stop ends the load and waits for the calls in flight to finish.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// recoverAfter probes with echo calls from `from` on until one is answered
// correctly, at most within; it returns the time from `from` to that answer.
func recoverAfter(th *testHub, from time.Time, within time.Duration, c *counts) (time.Duration, bool) {
	ctx, cancel := context.WithDeadline(context.Background(), from.Add(within))
	defer cancel()
	for i := 0; ctx.Err() == nil && i < 100_000; i++ {
		if callEcho(ctx, th.hub(), fmt.Sprintf("probe-%d-%d", from.UnixNano(), i), 5, 0, c) {
			return time.Since(from), true
		}
		select {
		case <-ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
	return time.Since(from), false
}

// percentile returns the p-th percentile (0..100) of ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(i-1, 0)]
}

// faultRow is one line of the docs/reliability.md table, logged by each
// fault test in a fixed format.
func logRow(t testing.TB, fault string, injected int, c *counts, rec []time.Duration) {
	t.Helper()
	t.Logf("ROW | %s | %d | %d | %d | %d | %d | %v / %v |", fault, injected,
		c.sent.Load(), c.answered.Load(), c.wrong.Load(), c.lost.Load(),
		percentile(rec, 50).Round(time.Millisecond), percentile(rec, 100).Round(time.Millisecond))
}
