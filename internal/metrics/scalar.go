package metrics

import (
	"math"
	"slices"
	"sync/atomic"
)

// Counter is a counter family of one series without labels. Its methods
// are safe for concurrent use.
type Counter struct {
	name, help string
	n          atomic.Uint64
}

// NewCounter returns a Counter at 0 named name, with help as its HELP text.
func NewCounter(name, help string) *Counter { return &Counter{name: name, help: help} }

// Inc adds 1.
func (c *Counter) Inc() { c.n.Add(1) }

// Names is c's one family name.
func (c *Counter) Names() []string { return []string{c.name} }

// Collect appends c's family.
func (c *Counter) Collect(fams []Family) []Family {
	return append(fams, Family{Name: c.name, Help: c.help, Type: CounterType,
		Series: []Series{{Value: float64(c.n.Load())}}})
}

// Gauge is a gauge family of one series, with constant labels or none.
// Its methods are safe for concurrent use.
type Gauge struct {
	name, help string
	labels     []Label
	bits       atomic.Uint64 // math.Float64bits of the value
}

// NewGauge returns a Gauge at 0 named name, with help as its HELP text and
// labels as its series' labels.
func NewGauge(name, help string, labels ...Label) *Gauge {
	return &Gauge{name: name, help: help, labels: slices.Clone(labels)}
}

// Set sets the value to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Value is the value last Set, 0 before.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Names is g's one family name.
func (g *Gauge) Names() []string { return []string{g.name} }

// Collect appends g's family.
func (g *Gauge) Collect(fams []Family) []Family {
	return append(fams, Family{Name: g.name, Help: g.help, Type: GaugeType,
		Series: []Series{{Labels: slices.Clone(g.labels), Value: g.Value()}}})
}

// GaugeFunc is a gauge family of one series without labels whose value is
// what a function returns at scrape time.
type GaugeFunc struct {
	name, help string
	value      func() float64
}

// NewGaugeFunc returns a GaugeFunc named name, with help as its HELP text,
// that calls value at each scrape; value must be safe for concurrent use.
func NewGaugeFunc(name, help string, value func() float64) *GaugeFunc {
	return &GaugeFunc{name: name, help: help, value: value}
}

// Names is g's one family name.
func (g *GaugeFunc) Names() []string { return []string{g.name} }

// Collect appends g's family, with value's value now.
func (g *GaugeFunc) Collect(fams []Family) []Family {
	return append(fams, Family{Name: g.name, Help: g.help, Type: GaugeType,
		Series: []Series{{Value: g.value()}}})
}
