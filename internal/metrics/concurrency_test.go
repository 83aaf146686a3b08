package metrics_test

import (
	"io"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/metrics"
)

// TestConcurrentCallsAndScrapes: calls counted from many goroutines while
// scrapes gather and write are all counted exactly (run with -race), and
// every histogram series' +Inf bucket equals its count.
func TestConcurrentCallsAndScrapes(t *testing.T) {
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg, "v")
	if err != nil {
		t.Fatal(err)
	}
	const workers, calls, methods = 16, 500, 4
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	for range 2 {
		scrapes.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := metrics.WriteText(io.Discard, reg.Gather()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				m.CallDone("m"+strconv.Itoa(i%methods), true, 200+w%2, time.Second)
				m.Connected(i%2 == 0)
				m.Reloaded(i%3 != 0, time.Unix(int64(i), 0))
			}
		})
	}
	wg.Wait()
	close(stop)
	scrapes.Wait()

	perSeries := float64(workers / 2 * calls / methods)
	for _, f := range reg.Gather() {
		switch f.Name {
		case "methodd_calls_total":
			if len(f.Series) != methods*2 {
				t.Errorf("calls: %d series, want %d", len(f.Series), methods*2)
			}
			for _, s := range f.Series {
				if s.Value != perSeries {
					t.Errorf("calls%v = %v, want %v", s.Labels, s.Value, perSeries)
				}
			}
		case "methodd_call_duration_seconds":
			for _, s := range f.Series {
				inf := s.Buckets[len(s.Buckets)-1]
				want := uint64(2 * perSeries)
				if s.Count != want || inf.Count != want || !math.IsInf(inf.UpperBound, 1) || s.Sum != float64(want) {
					t.Errorf("duration%v: count %d, +Inf bucket %v, sum %v; want %d, %d, %d", s.Labels, s.Count, inf, s.Sum, want, want, want)
				}
			}
		}
	}
}

// TestCallDoneAllocatesNothing: counting a call of a method already seen
// allocates nothing (the daemon calls it on every reply).
func TestCallDoneAllocatesNothing(t *testing.T) {
	m, err := metrics.New(metrics.NewRegistry(), "v")
	if err != nil {
		t.Fatal(err)
	}
	m.CallDone("hello", true, 200, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { m.CallDone("hello", true, 200, time.Millisecond) }); n != 0 {
		t.Errorf("CallDone allocates %v times per call, want 0", n)
	}
}
