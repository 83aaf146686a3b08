package reliability

import (
	"flag"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/faultproxy"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the fault schedule (0: derived from the clock, logged)")

// recoveryLimit is the requirement: after each fault the daemon
// answers again within 10 s.
const recoveryLimit = 10 * time.Second

// rng returns the test's seeded random source and logs the seed.
func rng(t *testing.T) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed+1))
}

// between returns a random duration in [lo, hi).
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// recoverOrGiveUp measures recovery from `from`; past the limit it records
// a violation and keeps waiting (bounded by hardLimit) so the run can go on.
func recoverOrGiveUp(t *testing.T, th *testHub, what string, from time.Time, c *counts, hardLimit time.Duration) (time.Duration, bool) {
	t.Helper()
	rec, ok := recoverAfter(th, from, recoveryLimit, c)
	if ok {
		return rec, true
	}
	t.Errorf("%s: no correct answer within %v: %s", what, recoveryLimit, c.String())
	rec, ok = recoverAfter(th, from, hardLimit, c)
	if !ok {
		t.Fatalf("%s: still no answer after %v", what, hardLimit)
	}
	t.Logf("%s: recovered only after %v", what, rec.Round(time.Millisecond))
	return rec, true
}

// TestHubRestarts kills and restarts the hub (Close + Start on the same
// directory and ports) 20 times at random moments under continuous load;
// no reply may be wrong and the daemon must answer within 10 s of each
// restart. The daemon runs with `methodd run`'s timing (defaults).
func TestHubRestarts(t *testing.T) {
	r := rng(t)
	th := startHub(t, deviceID)
	startDaemon(t, th.daemonConfig(t, deviceID, ""), echoYAML)
	l := startLoad(th, 4, 20*time.Millisecond, 5)
	const restarts = 20
	budget := time.Now().Add(100 * time.Second) // bounds CI time when recovery is slow
	var rec []time.Duration
	for i := range restarts {
		wait(between(r, 100*time.Millisecond, 1500*time.Millisecond))
		if err := th.restart(); err != nil {
			t.Fatalf("restart %d: %v", i+1, err)
		}
		d, _ := recoverOrGiveUp(t, th, "restart "+strconv.Itoa(i+1), time.Now(), &l.counts, 35*time.Second)
		rec = append(rec, d)
		t.Logf("restart %d: answered again after %v (%s)", i+1, d.Round(time.Millisecond), l.String())
		if time.Now().After(budget) {
			t.Errorf("stopping after %d restarts: time budget spent", i+1)
			break
		}
	}
	l.stop()
	checkQuiet(t, th)
	t.Logf("restarts: %s; recovery p50 %v max %v", l.String(), percentile(rec, 50), percentile(rec, 100))
	logRow(t, "hub restart (Close+Start, same dir/ports)", len(rec), &l.counts, rec)
	if n := l.wrong.Load(); n != 0 {
		t.Errorf("%d wrong replies; first: %v", n, l.firstWrong.Load())
	}
}

// checkQuiet makes 20 calls with no fault: every one must be answered.
func checkQuiet(t *testing.T, th *testHub) {
	t.Helper()
	var c counts
	for i := range 20 {
		callEcho(t.Context(), th.hub(), "quiet-"+strconv.Itoa(i), 5, 0, &c)
	}
	if c.answered.Load() != 20 {
		t.Errorf("after the faults, without any: %s, want all 20 answered", c.String())
	}
}

// proxied starts a hub, a fault proxy in front of its MQTT port and a daemon
// that dials the hub through the proxy (GatewayHostName).
func proxied(t *testing.T, seed uint64, keepAlive time.Duration) (*testHub, *faultproxy.Proxy, *runningDaemon) {
	t.Helper()
	th := startHub(t, deviceID)
	p, err := faultproxy.New(th.info.MQTTAddr, faultproxy.Options{Delay: 200 * time.Millisecond, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	_, port, _ := net.SplitHostPort(p.Addr())
	cfg := th.daemonConfig(t, deviceID, "localhost:"+port)
	cfg.KeepAlive = keepAlive
	return th, p, startDaemon(t, cfg, echoYAML)
}

// TestBlackholeDetectedWithinOneAndHalfKeepalive black-holes the daemon's
// connection (nothing arrives either way, nothing is reset) three times under
// load. The daemon must notice within 1.5 × keep-alive (plus 1 s of
// scheduling slack on this shared machine), and answer again within 10 s of
// the network coming back.
func TestBlackholeDetectedWithinOneAndHalfKeepalive(t *testing.T) {
	r := rng(t)
	const keepAlive = 2 * time.Second
	th, p, d := proxied(t, r.Uint64(), keepAlive)
	l := startLoad(th, 2, 50*time.Millisecond, 5)
	limit := keepAlive*3/2 + time.Second
	var rec, detect []time.Duration
	for i := range 3 {
		wait(between(r, 500*time.Millisecond, 1500*time.Millisecond))
		start := time.Now()
		p.SetMode(faultproxy.Blackhole)
		at, ok := d.states.waitFor(device.Disconnected, start, 20*time.Second)
		p.SetMode(faultproxy.Pass)
		healed := time.Now()
		if !ok {
			t.Errorf("black hole %d: the daemon did not notice within 20s", i+1)
		} else {
			detect = append(detect, at.Sub(start))
			if at.Sub(start) > limit {
				t.Errorf("black hole %d: noticed after %v, want ≤ %v (1.5 × keep-alive %v + 1s)", i+1, at.Sub(start).Round(time.Millisecond), limit, keepAlive)
			}
		}
		d, _ := recoverOrGiveUp(t, th, "black hole "+strconv.Itoa(i+1), healed, &l.counts, 40*time.Second)
		rec = append(rec, d)
	}
	l.stop()
	checkQuiet(t, th)
	t.Logf("black hole: %s; detection %v; recovery p50 %v max %v", l.String(), detect, percentile(rec, 50), percentile(rec, 100))
	logRow(t, "black hole (proxy holds all bytes) until detected", len(rec), &l.counts, rec)
	if n := l.wrong.Load(); n != 0 {
		t.Errorf("%d wrong replies; first: %v", n, l.firstWrong.Load())
	}
}

// TestProxyCut closes the daemon's TCP connection (both ends) five times at
// random moments under load: answers again within 10 s, none wrong.
func TestProxyCut(t *testing.T) {
	r := rng(t)
	th, p, _ := proxied(t, r.Uint64(), 0)
	l := startLoad(th, 4, 20*time.Millisecond, 5)
	var rec []time.Duration
	for i := range 5 {
		wait(between(r, 200*time.Millisecond, 2*time.Second))
		p.Cut()
		d, _ := recoverOrGiveUp(t, th, "cut "+strconv.Itoa(i+1), time.Now(), &l.counts, 40*time.Second)
		rec = append(rec, d)
	}
	l.stop()
	checkQuiet(t, th)
	logRow(t, "connection cut (proxy closes both sides)", len(rec), &l.counts, rec)
	if n := l.wrong.Load(); n != 0 {
		t.Errorf("%d wrong replies; first: %v", n, l.firstWrong.Load())
	}
}

// TestProxyDelayAndChunk runs the load through 200 ms of added latency, then
// through a proxy that fragments every packet at random byte boundaries with
// random pauses: every call must be answered, none wrong.
func TestProxyDelayAndChunk(t *testing.T) {
	r := rng(t)
	for _, mode := range []faultproxy.Mode{faultproxy.Delay, faultproxy.Chunk} {
		t.Run(mode.String(), func(t *testing.T) {
			th, p, _ := proxied(t, r.Uint64(), 0)
			l := startLoad(th, 4, 20*time.Millisecond, 10)
			start := time.Now()
			p.SetMode(mode)
			d, _ := recoverOrGiveUp(t, th, mode.String(), start, &l.counts, 40*time.Second)
			wait(4 * time.Second)
			l.stop()
			logRow(t, "proxy "+mode.String()+" for 4s", 1, &l.counts, []time.Duration{d})
			if n := l.wrong.Load(); n != 0 {
				t.Errorf("%d wrong replies; first: %v", n, l.firstWrong.Load())
			}
			if n := l.lost.Load(); n != 0 {
				t.Errorf("%s: %d calls lost, want none (%s)", mode, n, l.String())
			}
		})
	}
}
