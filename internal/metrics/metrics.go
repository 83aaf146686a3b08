package metrics

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"
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

// DurationBuckets returns the bounds (seconds) of
// methodd_call_duration_seconds: from an expression method's
// sub-millisecond reply to the 300 s ceiling of a command. Each call
// returns a fresh slice.
func DurationBuckets() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
}

// Metrics are one daemon's metrics. It implements daemon.Observer; its
// methods are safe for concurrent use and never block.
type Metrics struct {
	calls      *CounterVec
	duration   *HistogramVec
	connected  *Gauge
	reconnects *Counter
	reloadOK   *Gauge
	reloadAt   *Gauge
	tasks      atomic.Pointer[func() int] // set by TasksRunning
	statuses   [600 - 100]string          // "100".."599", so CallDone allocates nothing
}

// New registers the daemon's metrics, methodd_build_info (version as
// given, "(devel)" when empty) and the Go and process collectors on reg.
// It fails when reg already holds any of them.
func New(reg *Registry, version string) (*Metrics, error) {
	m := &Metrics{
		calls: NewCounterVec("methodd_calls_total",
			"Method calls answered, by method and reply status. Methods the active handlers do not have count as method=\"(unknown)\".",
			"method", "status"),
		duration: NewHistogramVec("methodd_call_duration_seconds",
			"Time from a method call's arrival to its reply, by method.",
			DurationBuckets(), "method"),
		connected: NewGauge("methodd_connected",
			"1 while the MQTT session to IoT Hub is connected and subscribed, else 0."),
		reconnects: NewCounter("methodd_reconnects_total",
			"Times the session connected again after its connection was lost (SAS token renewals excluded)."),
		reloadOK: NewGauge("methodd_config_last_reload_successful",
			"Whether the last reload of the handlers file was applied (1) or rejected or refused (0)."),
		reloadAt: NewGauge("methodd_config_last_reload_success_timestamp_seconds",
			"When the handlers file serving now was loaded (Unix time)."),
	}
	for i := range m.statuses {
		m.statuses[i] = strconv.Itoa(100 + i)
	}
	tasks := NewGaugeFunc("methodd_tasks_running",
		"Tasks of async methods running now (0 without async methods).", m.runningTasks)
	for _, c := range []Collector{
		m.calls, m.duration, m.connected, m.reconnects, m.reloadOK, m.reloadAt, tasks,
		buildInfo(version), goCollector{}, processCollector{},
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// buildInfo is methodd_build_info{version,goversion,revision} = 1; revision
// is the VCS revision the binary was built from, "" when unknown.
func buildInfo(version string) *Gauge {
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
	g := NewGauge("methodd_build_info", "Always 1; its labels name the build of methodd running.",
		Label{"version", version}, Label{"goversion", runtime.Version()}, Label{"revision", revision})
	g.Set(1)
	return g
}

// CallDone counts a call answered with status after d, under its method's
// name when known, else under UnknownMethod.
func (m *Metrics) CallDone(method string, known bool, status int, d time.Duration) {
	if !known {
		method = UnknownMethod
	}
	m.calls.Inc(method, m.statusLabel(status))
	m.duration.Observe(d.Seconds(), method)
}

// statusLabel is status in decimal, or OtherStatus outside 100..599.
func (m *Metrics) statusLabel(status int) string {
	if status < 100 || status > 599 {
		return OtherStatus
	}
	return m.statuses[status-100]
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
