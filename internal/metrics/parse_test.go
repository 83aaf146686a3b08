package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/methodd/methodd/internal/metrics"
)

// The exposition is checked with Prometheus's own text parser
// (prometheus/common/expfmt, a test-only dependency): what it parses is
// what a Prometheus server scrapes.

// parse parses the text format as Prometheus does.
func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("Prometheus's parser: %v", err)
	}
	return fams
}

// TestScrapeParsesWithEveryFamily: a scrape with every family present
// parses without error, with exactly the families and types wanted, the
// media type of format 0.0.4, and values that make sense.
func TestScrapeParsesWithEveryFamily(t *testing.T) {
	e, err := metrics.Start("127.0.0.1:0", "v9", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Shutdown(context.Background()) }()
	start := time.Now()
	e.CallDone("hello", true, 200, 2*time.Second)
	e.CallDone("hello", true, 200, 500*time.Millisecond)
	e.CallDone("made-up", false, 404, time.Millisecond)
	e.Connected(true)
	e.Reconnected()
	reloadAt := time.Unix(1764430000, 250e6)
	e.Reloaded(true, reloadAt)
	e.TasksRunning(func() int { return 2 })
	runtime.GC()

	resp, err := http.Get("http://" + e.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q, want the text format 0.0.4's", ct)
	}
	fams := parse(t, resp.Body)

	want := map[string]dto.MetricType{
		"methodd_calls_total":                                  dto.MetricType_COUNTER,
		"methodd_call_duration_seconds":                        dto.MetricType_HISTOGRAM,
		"methodd_connected":                                    dto.MetricType_GAUGE,
		"methodd_reconnects_total":                             dto.MetricType_COUNTER,
		"methodd_config_last_reload_successful":                dto.MetricType_GAUGE,
		"methodd_config_last_reload_success_timestamp_seconds": dto.MetricType_GAUGE,
		"methodd_tasks_running":                                dto.MetricType_GAUGE,
		"methodd_build_info":                                   dto.MetricType_GAUGE,
		"promhttp_metric_handler_errors_total":                 dto.MetricType_COUNTER,
		"go_gc_duration_seconds":                               dto.MetricType_SUMMARY,
		"go_goroutines":                                        dto.MetricType_GAUGE,
		"go_info":                                              dto.MetricType_GAUGE,
		"go_threads":                                           dto.MetricType_GAUGE,
		"go_memstats_heap_alloc_bytes":                         dto.MetricType_GAUGE,
		"go_memstats_sys_bytes":                                dto.MetricType_GAUGE,
		"go_sched_gomaxprocs_threads":                          dto.MetricType_GAUGE,
	}
	if runtime.GOOS == "linux" {
		want["process_cpu_seconds_total"] = dto.MetricType_COUNTER
		for _, n := range []string{"process_max_fds", "process_open_fds", "process_resident_memory_bytes",
			"process_start_time_seconds", "process_virtual_memory_bytes"} {
			want[n] = dto.MetricType_GAUGE
		}
	}
	for name, typ := range want {
		switch f := fams[name]; {
		case f == nil:
			t.Errorf("%s is missing", name)
		case f.GetType() != typ:
			t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
		case f.GetHelp() == "":
			t.Errorf("%s: no HELP", name)
		}
	}
	for name := range fams {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: a family not wanted", name)
		}
	}

	value := func(name string) float64 {
		m := fams[name].GetMetric()[0]
		return m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	for name, v := range map[string]float64{
		"methodd_connected": 1, "methodd_reconnects_total": 1, "methodd_tasks_running": 2,
		"methodd_config_last_reload_success_timestamp_seconds": float64(reloadAt.UnixNano()) / 1e9,
	} {
		if got := value(name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	checkHistogram(t, fams["methodd_call_duration_seconds"])
	checkRuntime(t, fams, start)
}

// checkHistogram: hello's series holds 0.5 s and 2 s, in cumulative
// buckets bounded by DurationBuckets.
func checkHistogram(t *testing.T, f *dto.MetricFamily) {
	t.Helper()
	for _, m := range f.GetMetric() {
		if m.GetLabel()[0].GetValue() != "hello" {
			continue
		}
		h := m.GetHistogram()
		if h.GetSampleCount() != 2 || h.GetSampleSum() != 2.5 {
			t.Errorf("hello: count %d sum %v, want 2 and 2.5", h.GetSampleCount(), h.GetSampleSum())
		}
		var bounds []float64
		for _, b := range h.GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue
			}
			bounds = append(bounds, b.GetUpperBound())
			want := uint64(0)
			if b.GetUpperBound() >= 0.5 {
				want++
			}
			if b.GetUpperBound() >= 2 {
				want++
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("hello: bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
		if !slices.Equal(bounds, metrics.DurationBuckets()) {
			t.Errorf("hello: bounds %v, want %v", bounds, metrics.DurationBuckets())
		}
		return
	}
	t.Error("methodd_call_duration_seconds has no hello series")
}

// checkRuntime: the Go and process families read plausible values.
func checkRuntime(t *testing.T, fams map[string]*dto.MetricFamily, start time.Time) {
	t.Helper()
	if v := fams["go_info"].GetMetric()[0].GetLabel()[0].GetValue(); v != runtime.Version() {
		t.Errorf("go_info{version=%q}, want %q", v, runtime.Version())
	}
	if g := fams["go_goroutines"].GetMetric()[0].GetGauge().GetValue(); g < 2 {
		t.Errorf("go_goroutines = %v, want ≥ 2 (the test's and the server's)", g)
	}
	if s := fams["go_gc_duration_seconds"].GetMetric()[0].GetSummary(); s.GetSampleCount() < 1 || len(s.GetQuantile()) != 5 {
		t.Errorf("go_gc_duration_seconds: count %d, %d quantiles; want ≥ 1 after runtime.GC and 5", s.GetSampleCount(), len(s.GetQuantile()))
	}
	if runtime.GOOS != "linux" {
		return
	}
	gauge := func(n string) float64 { return fams[n].GetMetric()[0].GetGauge().GetValue() }
	if st := gauge("process_start_time_seconds"); math.Abs(st-float64(start.Unix())) > 600 {
		t.Errorf("process_start_time_seconds = %v, not within 10 min of now (%d)", st, start.Unix())
	}
	if rss, vsz := gauge("process_resident_memory_bytes"), gauge("process_virtual_memory_bytes"); rss < 1<<20 || vsz < rss {
		t.Errorf("process RSS %v, virtual %v: want RSS ≥ 1 MiB and virtual ≥ RSS", rss, vsz)
	}
	if open, limit := gauge("process_open_fds"), gauge("process_max_fds"); open < 3 || limit < open {
		t.Errorf("process_open_fds %v, process_max_fds %v: want 3 ≤ open ≤ max", open, limit)
	}
}

// TestLabelValuesRoundTrip: label values holding what the format escapes
// come back from Prometheus's parser unchanged.
func TestLabelValuesRoundTrip(t *testing.T) {
	values := []string{`back\slash`, `"quoted"`, "new\nline", `\n literally`, "été → ∞", "", `\"` + "\n\\"}
	reg := metrics.NewRegistry()
	c := metrics.NewCounterVec("odd_total", "Odd label values.", "v")
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		c.Inc(v)
	}
	var b strings.Builder
	if err := metrics.WriteText(&b, reg.Gather()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range parse(t, strings.NewReader(b.String()))["odd_total"].GetMetric() {
		got = append(got, m.GetLabel()[0].GetValue())
	}
	slices.Sort(got)
	slices.Sort(values)
	if !slices.Equal(got, values) {
		t.Errorf("parsed label values %q, want %q\n%s", got, values, b.String())
	}
}
