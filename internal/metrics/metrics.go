package metrics

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values that stand for many.
const (
	// UnknownMethod is the method label of every call to a method the
	// active handlers do not have. It cannot be a method's name: names are
	// letters, digits, "-" and "_".
	UnknownMethod = "(unknown)"
	// OtherStatus is the status label of a reply status outside 100..599
	// (the engine answers none).
	OtherStatus = "other"
)

// DurationBuckets are the bounds (seconds) of methodd_call_duration_seconds:
// from an expression method's sub-millisecond reply to the 300 s ceiling of
// a command.
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Metrics are one daemon's metrics. It implements daemon.Observer; its
// methods are safe for concurrent use and never block.
type Metrics struct {
	calls      *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	connected  prometheus.Gauge
	reconnects prometheus.Counter
	reloadOK   prometheus.Gauge
	reloadAt   prometheus.Gauge
	tasks      atomic.Pointer[func() int] // set by TasksRunning
}

// New registers the daemon's metrics, methodd_build_info (version as
// given, "(devel)" when empty) and the Go and process collectors on reg.
// It fails when reg already holds any of them.
func New(reg *prometheus.Registry, version string) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "methodd_calls_total",
			Help: "Method calls answered, by method and reply status. Methods the active handlers do not have count as method=\"(unknown)\".",
		}, []string{"method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "methodd_call_duration_seconds",
			Help:    "Time from a method call's arrival to its reply, by method.",
			Buckets: DurationBuckets,
		}, []string{"method"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "methodd_connected",
			Help: "1 while the MQTT session to IoT Hub is connected and subscribed, else 0.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "methodd_reconnects_total",
			Help: "Times the session connected again after its connection was lost (SAS token renewals excluded).",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "methodd_config_last_reload_successful",
			Help: "Whether the last reload of the handlers file was applied (1) or rejected or refused (0).",
		}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "methodd_config_last_reload_success_timestamp_seconds",
			Help: "When the handlers file serving now was loaded (Unix time).",
		}),
	}
	tasks := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "methodd_tasks_running",
		Help: "Tasks of async methods running now (0 without async methods).",
	}, m.runningTasks)
	for _, c := range []prometheus.Collector{
		m.calls, m.duration, m.connected, m.reconnects, m.reloadOK, m.reloadAt, tasks,
		buildInfo(version),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// buildInfo is methodd_build_info{version,goversion,revision} = 1; revision
// is the VCS revision the binary was built from, "" when unknown.
func buildInfo(version string) prometheus.Collector {
	if version == "" {
		version = "(devel)"
	}
	revision := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "methodd_build_info",
		Help:        "Always 1; its labels name the build of methodd running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version(), "revision": revision},
	})
	g.Set(1)
	return g
}

// CallDone counts a call answered with status after d, under its method's
// name when known, else under UnknownMethod.
func (m *Metrics) CallDone(method string, known bool, status int, d time.Duration) {
	if !known {
		method = UnknownMethod
	}
	m.calls.WithLabelValues(method, statusLabel(status)).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
}

// statusLabel is status in decimal, or OtherStatus outside 100..599.
func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return OtherStatus
	}
	return strconv.Itoa(status)
}

// Connected sets methodd_connected to 1 (up) or 0.
func (m *Metrics) Connected(up bool) {
	if up {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

// Reconnected counts a reconnection.
func (m *Metrics) Reconnected() { m.reconnects.Inc() }

// Reloaded records a reload's outcome; the success timestamp moves only
// when ok.
func (m *Metrics) Reloaded(ok bool, at time.Time) {
	if !ok {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadAt.Set(float64(at.UnixNano()) / 1e9)
}

// TasksRunning makes count the source of methodd_tasks_running.
func (m *Metrics) TasksRunning(count func() int) { m.tasks.Store(&count) }

// runningTasks is what the last TasksRunning function counts, 0 before one.
func (m *Metrics) runningTasks() float64 {
	if f := m.tasks.Load(); f != nil {
		return float64((*f)())
	}
	return 0
}
