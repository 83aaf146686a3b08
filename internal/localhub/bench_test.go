package localhub_test

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// inFlight is the number of concurrent calls the benchmarks keep going.
const inFlight = 16

// latencies collects per-call durations from parallel workers.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// report adds calls/s, p50 and p99 (ms) to the benchmark's output.
func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	pct := func(p float64) float64 {
		return float64(l.all[int(float64(len(l.all)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), "calls/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// benchHub starts a quiet hub with an in-process paho echo device.
func benchHub(b *testing.B) *testHub {
	th := startHub(b, localhub.Options{Logger: slog.New(slog.DiscardHandler)})
	d := th.mustConnect(b, "dev1")
	d.subscribe(b, 0, echo)
	return th
}

// runParallel runs call with exactly inFlight goroutines and reports.
func runParallel(b *testing.B, call func() error) {
	var lat latencies
	b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0))) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		lat.add(mine)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, elapsed)
}

// BenchmarkHubREST: REST in over keep-alive HTTPS, MQTT echo device out,
// 16 calls in flight.
func BenchmarkHubREST(b *testing.B) {
	th := benchHub(b)
	path := iothub.MethodsPath("dev1", "") + "?" + iothub.MethodsQuery
	auth := th.serviceToken(b)
	body := iothub.MethodRequest{MethodName: "echo", Payload: []byte(`{"n":1,"s":"hello"}`), ResponseTimeoutInSeconds: 30}.Encode()
	want := `{"status":200,"payload":{"n":1,"s":"hello"}}`
	runParallel(b, func() error {
		r := th.post(b, path, auth, body)
		if r.status != http.StatusOK || string(r.body) != want {
			return &iothub.Error{HTTPStatus: r.status, Message: string(r.body)}
		}
		return nil
	})
}

// BenchmarkHubInvoke: Hub.Invoke directly, MQTT echo device out, 16 in flight.
func BenchmarkHubInvoke(b *testing.B) {
	th := benchHub(b)
	req := iothub.MethodRequest{MethodName: "echo", Payload: []byte(`{"n":1,"s":"hello"}`), ResponseTimeoutInSeconds: 30}
	ctx := context.Background()
	runParallel(b, func() error {
		res, e := th.Invoke(ctx, "dev1", "", req)
		if e != nil {
			return e
		}
		if res.Status != 200 || string(res.Payload) != string(req.Payload) {
			return &iothub.Error{Message: "unexpected result " + string(res.Payload)}
		}
		return nil
	})
}
