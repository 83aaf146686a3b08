package reliability

import (
	"flag"
	"runtime"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/procstat"
)

var soakFlag = flag.Duration("soak", 60*time.Second, "duration of TestSoak (CI runs 60s; try -soak 10m)")

// soakSample is one reading of what a leak would grow.
type soakSample struct {
	at         time.Duration
	rss        int64
	heap       uint64 // runtime.MemStats.HeapInuse after a GC, nothing in flight
	goroutines int
	fds        int
}

// TestSoak measures the capacity of the in-process pipeline (hub → MQTT →
// device session → engine → reply) for 5 s, then runs it at half of that for
// -soak, sampling RSS, goroutines and fds every 10 s. After a warm-up (the
// first third, at least 20 s) no sample may exceed the warm-up's last by
// more than 10 %, and every call must be answered correctly.
func TestSoak(t *testing.T) {
	th := startHub(t, deviceID)
	startDaemon(t, th.daemonConfig(t, deviceID, ""), echoYAML)

	const workers = 8
	probe := startLoad(th, workers, 0, 10)
	wait(5 * time.Second)
	probe.stop()
	capacity := float64(probe.answered.Load()) / 5
	if capacity < 2 {
		t.Fatalf("capacity %.1f calls/s: %s", capacity, probe.String())
	}
	rate := capacity / 2
	interval := time.Duration(float64(workers) / rate * float64(time.Second))
	t.Logf("capacity %.0f calls/s (%d workers back to back); soak at %.0f calls/s for %v", capacity, workers, rate, *soakFlag)

	l := startLoad(th, workers, interval, 10)
	start := time.Now()
	warmup := max(*soakFlag/3, 20*time.Second)
	var samples []soakSample
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for time.Since(start) < *soakFlag {
		<-tick.C
		// Sample with no call in flight, so that what is measured is what
		// stays, not the work of the calls that happen to be running.
		var s soakSample
		var err error
		l.quiesce(func() { s, err = sampleProcess(time.Since(start)) })
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s)
		t.Logf("soak %v: rss %.1f MB, heap %.1f MB, goroutines %d, fds %d, %s", s.at, float64(s.rss)/1e6, float64(s.heap)/1e6, s.goroutines, s.fds, l.String())
	}
	l.stop()
	checkGrowth(t, samples, warmup)
	logRow(t, "none (soak, "+soakFlag.String()+" at half capacity)", 0, &l.counts, nil)
	if l.lost.Load() != 0 || l.wrong.Load() != 0 {
		t.Errorf("soak: %s, want every call answered", l.String())
	}
}

// checkGrowth fails when a sample after warm-up exceeds the last warm-up
// sample by more than 10 % (goroutines and fds get a floor of +20 and +5
// for the calls in flight at the moment of sampling). RSS is judged without
// -race, the Go heap with it (see raceEnabled).
func checkGrowth(t *testing.T, samples []soakSample, warmup time.Duration) {
	t.Helper()
	var base *soakSample
	for i := range samples {
		s := &samples[i]
		if s.at <= warmup {
			base = s
			continue
		}
		if base == nil {
			t.Fatalf("no sample within the warm-up of %v", warmup)
		}
		if !raceEnabled && float64(s.rss) > float64(base.rss)*1.10 {
			t.Errorf("at %v: rss %.1f MB, > 110 %% of %.1f MB at %v", s.at, float64(s.rss)/1e6, float64(base.rss)/1e6, base.at)
		}
		if raceEnabled && float64(s.heap) > float64(base.heap)*1.10 {
			t.Errorf("at %v: heap %.1f MB, > 110 %% of %.1f MB at %v", s.at, float64(s.heap)/1e6, float64(base.heap)/1e6, base.at)
		}
		if limit := max(base.goroutines*11/10, base.goroutines+20); s.goroutines > limit {
			t.Errorf("at %v: %d goroutines, > %d (was %d at %v)", s.at, s.goroutines, limit, base.goroutines, base.at)
		}
		if limit := max(base.fds*11/10, base.fds+5); s.fds > limit {
			t.Errorf("at %v: %d fds, > %d (was %d at %v)", s.at, s.fds, limit, base.fds, base.at)
		}
	}
	if base == nil || base == &samples[len(samples)-1] {
		t.Errorf("no sample after the warm-up of %v: run longer than %v", warmup, warmup+10*time.Second)
	}
}

// sampleProcess reads this process's RSS, heap, goroutines and fds after a
// full GC; at is when, from the soak's start.
func sampleProcess(at time.Duration) (soakSample, error) {
	runtime.GC()
	rss, err := procstat.RSSBytes(0)
	if err != nil {
		return soakSample{}, err
	}
	fds, err := procstat.OpenFDs(0)
	if err != nil {
		return soakSample{}, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return soakSample{at: at.Round(time.Second), rss: rss, heap: ms.HeapInuse, goroutines: runtime.NumGoroutine(), fds: fds}, nil
}
