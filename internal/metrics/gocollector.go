package metrics

import (
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// goCollector yields a subset of client_golang's Go collector, under its
// names, HELP texts and types, read at scrape time.
type goCollector struct{}

// goRuntimeGauges are the gauges read from runtime/metrics: family name,
// HELP, runtime/metrics name.
var goRuntimeGauges = [...]struct{ name, help, sample string }{
	{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", "/memory/classes/heap/objects:bytes"},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", "/memory/classes/total:bytes"},
	{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.", "/sched/gomaxprocs:threads"},
}

// Names are the families Collect yields.
func (goCollector) Names() []string {
	names := []string{"go_gc_duration_seconds", "go_goroutines", "go_info", "go_threads"}
	for _, g := range goRuntimeGauges {
		names = append(names, g.name)
	}
	return names
}

// Collect appends the Go runtime's families now.
func (goCollector) Collect(fams []Family) []Family {
	threads, _ := runtime.ThreadCreateProfile(nil)
	fams = append(fams,
		Family{Name: "go_goroutines", Help: "Number of goroutines that currently exist.", Type: GaugeType,
			Series: []Series{{Value: float64(runtime.NumGoroutine())}}},
		Family{Name: "go_threads", Help: "Number of OS threads created.", Type: GaugeType,
			Series: []Series{{Value: float64(threads)}}},
		Family{Name: "go_info", Help: "Information about the Go environment.", Type: GaugeType,
			Series: []Series{{Labels: []Label{{"version", runtime.Version()}}, Value: 1}}},
		gcDurations(),
	)
	samples := make([]rtmetrics.Sample, len(goRuntimeGauges))
	for i, g := range goRuntimeGauges {
		samples[i].Name = g.sample
	}
	rtmetrics.Read(samples)
	for i, g := range goRuntimeGauges {
		if samples[i].Value.Kind() != rtmetrics.KindUint64 {
			continue // not supported by this runtime
		}
		fams = append(fams, Family{Name: g.name, Help: g.help, Type: GaugeType,
			Series: []Series{{Value: float64(samples[i].Value.Uint64())}}})
	}
	return fams
}

// gcDurations is go_gc_duration_seconds: the GC pauses' minimum,
// quartiles and maximum (over the runtime's recent pauses), their total
// and the number of GCs.
func gcDurations() Family {
	st := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&st)
	s := Series{Sum: st.PauseTotal.Seconds(), Count: uint64(st.NumGC)}
	for i, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
		s.Quantiles = append(s.Quantiles, Quantile{Quantile: q, Value: st.PauseQuantiles[i].Seconds()})
	}
	return Family{Name: "go_gc_duration_seconds", Type: SummaryType, Series: []Series{s},
		Help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."}
}
