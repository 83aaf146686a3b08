package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/metrics"
	"github.com/methodd/methodd/iothub"
)

// End-to-end tests of the daemon's metrics: the daemon run by Run against
// the local hub (e2eRun), its Observer a metrics.Exporter as `methodd run
// --metrics-addr` starts it, scraped over real HTTP and parsed as
// Prometheus parses it. Values are checked exactly.

// metricsStart starts an Exporter on 127.0.0.1:0, shut down when the test
// ends (after the daemon: cleanups run last-registered first, so call it
// before e2eRun).
func metricsStart(t *testing.T) *metrics.Exporter {
	t.Helper()
	e, err := metrics.Start("127.0.0.1:0", "test-version", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// metricsScrape GETs /metrics and parses it.
func metricsScrape(t *testing.T, e *metrics.Exporter) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + e.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricsSeries maps each series of family name to its sample: the
// counter's or gauge's value, or the histogram's count. Series are named
// by their labels, "k=v,k=v" in the exposition's order ("" for none).
func metricsSeries(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		key := ""
		for i, l := range m.GetLabel() {
			if i > 0 {
				key += ","
			}
			key += l.GetName() + "=" + l.GetValue()
		}
		switch {
		case m.Counter != nil:
			out[key] = m.GetCounter().GetValue()
		case m.Gauge != nil:
			out[key] = m.GetGauge().GetValue()
		case m.Histogram != nil:
			out[key] = float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

// metricsWant compares a family's series with want, exactly.
func metricsWant(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]float64) {
	t.Helper()
	got := metricsSeries(fams, name)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: got %v, want %v", name, got, want)
	}
}

// metricsInvoke calls method on dev through the hub and checks its status.
func metricsInvoke(t *testing.T, h *localhub.Hub, dev, method, payload string, status int) {
	t.Helper()
	res, err := h.Invoke(context.Background(), dev, "", iothub.MethodRequest{MethodName: method,
		Payload: json.RawMessage(payload), ResponseTimeoutInSeconds: 10})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if res.Status != status {
		t.Fatalf("%s: got %d %s, want %d", method, res.Status, res.Payload, status)
	}
}

// TestMetricsCountCallsExactly: 3 × 200 on hello, 2 × 400 on greet and one
// unknown method (404) are counted exactly by method and status, the
// histogram holds as many observations per method, and the other metrics
// read as for a daemon that is connected and never reloaded.
func TestMetricsCountCallsExactly(t *testing.T) {
	e := metricsStart(t)
	hub := e2eStartHub(t, false, "m1")
	var loadedAt time.Time
	st := e2eRun(t, e2eYAML, hub.device(t, "m1"), engine.Options{}, func(c *Config) {
		c.Observer = e
		loadedAt = c.Loaded.Set.LoadedAt()
	})
	st.waitReady(t, 20*time.Second)
	for range 3 {
		metricsInvoke(t, hub.Hub, "m1", "hello", `{"name":"x"}`, 200)
	}
	for range 2 {
		metricsInvoke(t, hub.Hub, "m1", "greet", `{"name":7}`, 400)
	}
	metricsInvoke(t, hub.Hub, "m1", "no-such-method", `null`, 404)

	fams := metricsScrape(t, e)
	metricsWant(t, fams, "methodd_calls_total", map[string]float64{
		"method=(unknown),status=404": 1, "method=greet,status=400": 2, "method=hello,status=200": 3})
	metricsWant(t, fams, "methodd_call_duration_seconds", map[string]float64{
		"method=(unknown)": 1, "method=greet": 2, "method=hello": 3})
	metricsWant(t, fams, "methodd_connected", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_reconnects_total", map[string]float64{"": 0})
	metricsWant(t, fams, "methodd_config_last_reload_successful", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_config_last_reload_success_timestamp_seconds",
		map[string]float64{"": float64(loadedAt.UnixNano()) / 1e9})
	metricsWant(t, fams, "methodd_tasks_running", map[string]float64{"": 0})
	bi := metricsSeries(fams, "methodd_build_info")
	if len(bi) != 1 {
		t.Errorf("methodd_build_info: got %v, want one series", bi)
	}
	for labels, v := range bi {
		if v != 1 || !slices.Contains(strings.Split(labels, ","), "version=test-version") {
			t.Errorf("methodd_build_info{%s} = %v, want 1 with version=test-version", labels, v)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s is missing: want the Go and process collectors", name)
		}
	}
}

// TestMetricsUnknownMethodsStayBounded: 1,000 distinct unknown method names
// add one series, method="(unknown)", beside the known method's.
func TestMetricsUnknownMethodsStayBounded(t *testing.T) {
	e := metricsStart(t)
	hub := e2eStartHub(t, false, "m2")
	st := e2eRun(t, e2eYAML, hub.device(t, "m2"), engine.Options{}, func(c *Config) { c.Observer = e })
	st.waitReady(t, 20*time.Second)
	metricsInvoke(t, hub.Hub, "m2", "ping", `null`, 200)
	const n, workers = 1000, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				metricsInvoke(t, hub.Hub, "m2", fmt.Sprintf("unknown-%d", i), `null`, 404)
			}
		})
	}
	wg.Wait()
	fams := metricsScrape(t, e)
	metricsWant(t, fams, "methodd_calls_total", map[string]float64{
		"method=(unknown),status=404": n, "method=ping,status=200": 1})
	metricsWant(t, fams, "methodd_call_duration_seconds", map[string]float64{
		"method=(unknown)": n, "method=ping": 1})
}

// TestMetricsConnectedAndReconnects: connected is 1, then 0 once the hub
// has closed, then 1 again with one reconnection once it is back.
func TestMetricsConnectedAndReconnects(t *testing.T) {
	e := metricsStart(t)
	hub := e2eStartHub(t, false, "m3")
	lost := make(chan struct{}, 64)
	st := e2eRun(t, e2eEchoYAML, hub.device(t, "m3"), engine.Options{}, func(c *Config) {
		c.Observer = e
		record := c.OnState
		c.OnState = func(s device.State) {
			record(s)
			if s.Kind == device.Disconnected {
				select {
				case lost <- struct{}{}:
				default:
				}
			}
		}
	})
	st.waitReady(t, 20*time.Second)
	fams := metricsScrape(t, e)
	metricsWant(t, fams, "methodd_connected", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_reconnects_total", map[string]float64{"": 0})

	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("no Disconnected state within 20s of the hub closing")
	}
	fams = metricsScrape(t, e)
	metricsWant(t, fams, "methodd_connected", map[string]float64{"": 0})
	metricsWant(t, fams, "methodd_reconnects_total", map[string]float64{"": 0})

	opts := hub.opts
	opts.MQTTAddr, opts.HTTPSAddr = hub.info.MQTTAddr, hub.info.HTTPSAddr
	again, err := localhub.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("restart on the same dir and ports: %v", err)
	}
	t.Cleanup(func() { again.Close() })
	st.waitConnected(t, 20*time.Second)
	fams = metricsScrape(t, e)
	metricsWant(t, fams, "methodd_connected", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_reconnects_total", map[string]float64{"": 1})
}

// TestMetricsReload: a rejected reload sets last_reload_successful to 0 and
// keeps the success timestamp; an applied one sets it to 1 and moves the
// timestamp to the reload's start.
func TestMetricsReload(t *testing.T) {
	e := metricsStart(t)
	hub := e2eStartHub(t, false, "m4")
	var path string
	var loadedAt time.Time
	results := make(chan ReloadResult, 16)
	st := e2eRun(t, configA, hub.device(t, "m4"), engine.Options{}, func(c *Config) {
		c.Observer = e
		path, loadedAt = c.Path, c.Loaded.Set.LoadedAt()
		c.OnReload = func(r ReloadResult) { results <- r }
	})
	st.waitReady(t, 20*time.Second)
	next := func(want ReloadOutcome) ReloadResult {
		t.Helper()
		for {
			select {
			case r := <-results:
				if r.Outcome == ReloadUnchanged {
					continue // the watcher's start-up check
				}
				if r.Outcome != want {
					t.Fatalf("reload: got %v, want %v", r.Outcome, want)
				}
				return r
			case <-time.After(reloadWait):
				t.Fatalf("no reload within %v", reloadWait)
				return ReloadResult{}
			}
		}
	}
	okAt := map[string]float64{"": float64(loadedAt.UnixNano()) / 1e9}
	fams := metricsScrape(t, e)
	metricsWant(t, fams, "methodd_config_last_reload_successful", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_config_last_reload_success_timestamp_seconds", okAt)

	writeConfig(t, path, configBad)
	next(ReloadRejected)
	fams = metricsScrape(t, e)
	metricsWant(t, fams, "methodd_config_last_reload_successful", map[string]float64{"": 0})
	metricsWant(t, fams, "methodd_config_last_reload_success_timestamp_seconds", okAt)

	writeConfig(t, path, configB)
	r := next(ReloadApplied)
	if !r.At.After(loadedAt) {
		t.Fatalf("reload at %v, not after the start-up load at %v", r.At, loadedAt)
	}
	fams = metricsScrape(t, e)
	metricsWant(t, fams, "methodd_config_last_reload_successful", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_config_last_reload_success_timestamp_seconds",
		map[string]float64{"": float64(r.At.UnixNano()) / 1e9})
	metricsInvoke(t, hub.Hub, "m4", "extra", `null`, 200)
	metricsWant(t, metricsScrape(t, e), "methodd_calls_total", map[string]float64{"method=extra,status=200": 1})
}

// TestMetricsTasksRunning: a running task of an async method counts 1,
// and 0 once it has been cancelled and has ended.
func TestMetricsTasksRunning(t *testing.T) {
	e := metricsStart(t)
	hub := e2eStartHub(t, false, "m5")
	st := e2eRun(t, `version: 1
methods:
  update:
    async: true
    timeout: 20m
    shell: 'while true; do sleep 0.01; done'
`, hub.device(t, "m5"), engine.Options{}, func(c *Config) { c.Observer = e })
	st.waitReady(t, 20*time.Second)
	metricsWant(t, metricsScrape(t, e), "methodd_tasks_running", map[string]float64{"": 0})
	res, err := hub.Invoke(context.Background(), "m5", "", iothub.MethodRequest{MethodName: "update",
		Payload: json.RawMessage(`null`), ResponseTimeoutInSeconds: 10})
	var started struct{ TaskID string }
	if err != nil || res.Status != 202 || json.Unmarshal(res.Payload, &started) != nil {
		t.Fatalf("update: %+v, %v; want 202 with a task id", res, err)
	}
	fams := metricsScrape(t, e)
	metricsWant(t, fams, "methodd_tasks_running", map[string]float64{"": 1})
	metricsWant(t, fams, "methodd_calls_total", map[string]float64{"method=update,status=202": 1})

	metricsInvoke(t, hub.Hub, "m5", "taskCancel", `{"taskId":"`+started.TaskID+`"}`, 200)
	deadline := time.Now().Add(30 * time.Second)
	for metricsSeries(metricsScrape(t, e), "methodd_tasks_running")[""] != 0 { // each poll is a real scrape
		if time.Now().After(deadline) {
			t.Fatal("methodd_tasks_running still not 0 30 s after taskCancel")
		}
	}
}
