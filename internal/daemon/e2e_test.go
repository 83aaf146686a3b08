package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// End-to-end tests: the daemon, run through Run as `methodd run` runs it,
// against the local hub on 127.0.0.1:0 with real paho and real TLS; calls
// made as a service makes them (REST, or the hub's Invoke). Each waits for
// what the daemon reports (Config.OnReady, Config.OnState), never for logs.

// e2eYAML is a handlers file with an expression method and a command
// method.
const e2eYAML = `version: 1
methods:
  hello:
    reply:
      payload: '{"hello": payload.name, "deviceId": deviceId, "moduleId": moduleId, "requestId": requestId}'
  greet:
    params:
      name: {type: string, required: true}
    run: [echo, "hi ${params.name}"]
    reply:
      status: 'exitCode == 0 ? 200 : 500'
      payload: '{"out": trim(stdout)}'
`

// e2eEchoYAML answers "echo" with the request payload. Its concurrency
// is above the number of calls any test here has in flight, so that no
// call is refused busy.
const e2eEchoYAML = `version: 1
methods:
  echo:
    concurrency: 64
    reply: {payload: payload}
`

func TestEndToEndEngineMethodsOverREST(t *testing.T) {
	hub := e2eStartHub(t, false, "gw")
	st := e2eRun(t, e2eYAML, hub.device(t, "gw"), engine.Options{})
	st.waitReady(t, 20*time.Second)

	tests := []struct {
		name, method, payload string
		status                int
		check                 func(map[string]any) string
	}{
		{"expression", "hello", `{"name":"ann"}`, 200, func(p map[string]any) string {
			if p["hello"] != "ann" || p["deviceId"] != "gw" || p["requestId"] == "" {
				return "want hello=ann, deviceId=gw and a requestId"
			}
			return ""
		}},
		{"command", "greet", `{"name":"bob"}`, 200, func(p map[string]any) string {
			if p["out"] != "hi bob" {
				return `want out="hi bob"`
			}
			return ""
		}},
		{"params violation", "greet", `{"name":7}`, 400, func(p map[string]any) string {
			if !strings.Contains(fmt.Sprint(p["error"]), "name") {
				return "want an error naming the field"
			}
			return ""
		}},
		{"unknown method", "nope", `null`, 404, func(p map[string]any) string {
			ms, _ := p["methods"].([]any)
			if !slices.Contains(ms, any("hello")) || !slices.Contains(ms, any("greet")) {
				return "want the method list"
			}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, herr := hub.rest(t, "gw", "", tc.method, tc.payload)
			if herr != nil {
				t.Fatalf("REST: %v", herr)
			}
			var p map[string]any
			if err := json.Unmarshal(res.Payload, &p); err != nil {
				t.Fatalf("payload %s: %v", res.Payload, err)
			}
			if res.Status != tc.status {
				t.Errorf("status: got %d, want %d (payload %s)", res.Status, tc.status, res.Payload)
			}
			if msg := tc.check(p); msg != "" {
				t.Errorf("payload %s: %s", res.Payload, msg)
			}
		})
	}
}

func TestEndToEndModuleIdentity(t *testing.T) {
	hub := e2eStartHub(t, false, "gw/cam")
	st := e2eRun(t, e2eYAML, hub.device(t, "gw/cam"), engine.Options{})
	st.waitReady(t, 20*time.Second)
	res, herr := hub.rest(t, "gw", "cam", "hello", `{"name":"m"}`)
	if herr != nil {
		t.Fatalf("REST on the module route: %v", herr)
	}
	var p map[string]any
	if err := json.Unmarshal(res.Payload, &p); err != nil {
		t.Fatalf("payload %s: %v", res.Payload, err)
	}
	if res.Status != 200 || p["deviceId"] != "gw" || p["moduleId"] != "cam" {
		t.Errorf("got %d %s, want 200 with deviceId gw and moduleId cam", res.Status, res.Payload)
	}
	// The device route does not reach the module.
	var he *iothub.Error
	if _, err := hub.rest(t, "gw", "", "hello", `{}`); !errors.As(err, &he) || he.Code != iothub.CodeDeviceNotOnline {
		t.Errorf("device route: got %v, want 404103", err)
	}
}

func TestEndToEndWebSockets(t *testing.T) {
	hub := e2eStartHub(t, true, "wsdev")
	dev := hub.device(t, "wsdev")
	dev.Transport = device.TransportMQTTWS
	dev.Identity.GatewayHostName = hub.wsGateway()
	st := e2eRun(t, e2eYAML, dev, engine.Options{})
	st.waitReady(t, 20*time.Second)
	res, herr := hub.rest(t, "wsdev", "", "hello", `{"name":"ws"}`)
	if herr != nil || res.Status != 200 || !strings.Contains(string(res.Payload), `"hello":"ws"`) {
		t.Errorf("got %v %s, want 200 with hello=ws", herr, res.Payload)
	}
}

// TestEndToEndSASRenewal: 20 s tokens, the hub disconnecting expired ones;
// calls made without pause for 80 s all succeed while the session renews at
// least 4 times.
//
// The token lives 20 s so that a renewal (at 80 %) leaves 4 s before the
// hub expires the old connection. With 10 s tokens the margin was 1–2 s,
// and a stall of the test process longer than that under CI load (seen:
// 3.4 s, with -race and two such tests side by side) let the hub expire
// the old connection with replies in flight on it: a race of the test's
// timing that production's 1 h tokens (12 min of margin) never run.
func TestEndToEndSASRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("80 s")
	}
	hub := e2eStartHub(t, false, "renew")
	dev := hub.device(t, "renew")
	dev.SASTTL = 20 * time.Second
	st := e2eRun(t, e2eEchoYAML, dev, engine.Options{})
	st.waitReady(t, 20*time.Second)

	const workers = 4
	var calls, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				err := e2eInvokeEcho(context.Background(), hub.Hub, "renew", fmt.Sprintf("w%d-%d", w, i))
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	renewals := st.count(func(s device.State) bool { return s.Kind == device.Connected && s.Renewal })
	lost := st.count(func(s device.State) bool { return s.Kind == device.Disconnected })
	t.Logf("%d calls, %d failed, %d renewals, %d disconnections", calls.Load(), failed.Load(), renewals, lost)
	if renewals < 4 {
		t.Errorf("renewals: got %d, want ≥ 4", renewals)
	}
	if lost != 0 {
		t.Errorf("disconnections: got %d, want 0 (the hub never had to expire a token)", lost)
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed; first: %v", failed.Load(), calls.Load(), failures[:min(len(failures), 5)])
	}
}

// TestEndToEndHubRestart: the hub stops and starts again on the same
// directory and ports; the daemon, never restarted, answers again within
// 10 s, and every reply carries its own call's id.
func TestEndToEndHubRestart(t *testing.T) {
	hub := e2eStartHub(t, false, "rs")
	st := e2eRun(t, e2eEchoYAML, hub.device(t, "rs"), engine.Options{})
	st.waitReady(t, 20*time.Second)
	ctx := context.Background()
	for i := range 10 {
		if err := e2eInvokeEcho(ctx, hub.Hub, "rs", fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	// Calls keep going across the restart; each must get its own reply or
	// a hub error, never another call's reply.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var cur atomic.Pointer[localhub.Hub]
	cur.Store(hub.Hub)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := e2eInvokeEcho(ctx, cur.Load(), "rs", fmt.Sprintf("during-%d-%d", w, i)); e2eIsMixed(err) {
					t.Error(err)
				}
			}
		})
	}

	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	opts := hub.opts
	opts.MQTTAddr, opts.HTTPSAddr = hub.info.MQTTAddr, hub.info.HTTPSAddr
	again, err := localhub.Start(ctx, opts)
	if err != nil {
		t.Fatalf("restart on the same dir and ports: %v", err)
	}
	t.Cleanup(func() { again.Close() })
	cur.Store(again)
	restarted := time.Now()

	st.waitConnected(t, 10*time.Second)
	var answered bool
	for !answered && time.Since(restarted) < 10*time.Second {
		answered = e2eInvokeEcho(ctx, again, "rs", "probe-"+time.Now().Format("150405.000000")) == nil
	}
	if !answered {
		t.Fatal("no answer within 10 s of the hub restarting")
	}
	t.Logf("answering again %v after the restart", time.Since(restarted).Round(time.Millisecond))
	for i := range 20 {
		if err := e2eInvokeEcho(ctx, again, "rs", fmt.Sprintf("after-%d", i)); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

// e2eSlowYAML has "echo" and "slow", a command that takes 5 s (the
// method's own duration, not test synchronisation). Its when condition
// calls hostname(), which the test backs (engine.Options.Hostname) to learn
// that the slow call has started: the engine evaluates when after taking
// the call and before running the command.
const e2eSlowYAML = e2eEchoYAML + `  slow:
    when: hostname() != ""
    run: [sleep, "5"]
    timeout: 30s
`

func TestEndToEndSlowMethodDoesNotDelayFastOnes(t *testing.T) {
	hub := e2eStartHub(t, false, "sf")
	var slowAsked atomic.Bool
	started := make(chan struct{})
	var once sync.Once
	hostname := func() (string, error) {
		if !slowAsked.Load() {
			return "", errors.New("hostname() called before the slow call was made")
		}
		once.Do(func() { close(started) })
		return "test-host", nil
	}
	st := e2eRun(t, e2eSlowYAML, hub.device(t, "sf"), engine.Options{Hostname: hostname})
	st.waitReady(t, 20*time.Second)

	var mu sync.Mutex
	var order []string
	finish := func(name string) {
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	slowAsked.Store(true)
	wg.Go(func() {
		res, err := hub.Invoke(context.Background(), "sf", "", iothub.MethodRequest{MethodName: "slow", Payload: json.RawMessage(`1`), ResponseTimeoutInSeconds: 30})
		if err != nil {
			t.Error(err)
		} else if res.Status != 200 {
			t.Errorf("slow: got %d %s, want 200", res.Status, res.Payload)
		}
		finish("slow")
	})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow call did not start within 20s")
	}
	for i := range 50 {
		wg.Go(func() {
			if err := e2eInvokeEcho(context.Background(), hub.Hub, "sf", fmt.Sprintf("fast-%d", i)); err != nil {
				t.Error(err)
			}
			finish("fast")
		})
	}
	wg.Wait()
	if len(order) != 51 || order[50] != "slow" {
		i := slices.Index(order, "slow")
		t.Errorf("the slow call finished at position %d of %d; want last (after all 50 fast calls)", i+1, len(order))
	}
}

// BenchmarkEndToEndExprCall measures one expression-method call end to end
// in one process: hub.Invoke → MQTT/TLS → session → engine → reply → hub,
// the daemon run by Run. The cpu-µs/op metric is the whole process (hub and
// daemon); the daemon-only figure comes from TestRunResourceUsage in
// test/bench, which runs the daemon as its own process.
func BenchmarkEndToEndExprCall(b *testing.B) {
	hub := e2eStartHub(b, false, "bench")
	st := e2eRun(b, e2eYAML, hub.device(b, "bench"), engine.Options{})
	st.waitReady(b, 20*time.Second)
	req := iothub.MethodRequest{MethodName: "hello", Payload: json.RawMessage(`{"name":"b"}`), ResponseTimeoutInSeconds: 10}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := testkit.ProcessCPU()
	b.ResetTimer()
	for b.Loop() {
		res, err := hub.Invoke(ctx, "bench", "", req)
		if err != nil || res.Status != 200 {
			b.Fatalf("got %v %v", res, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((testkit.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
