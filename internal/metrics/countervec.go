package metrics

import "sync/atomic"

// CounterVec is a counter family whose series are keyed by label values.
// Its methods are safe for concurrent use.
type CounterVec struct {
	name, help string
	v          *vec[atomic.Uint64]
}

// NewCounterVec returns a CounterVec without series named name, with help
// as its HELP text, its series labelled by labels.
func NewCounterVec(name, help string, labels ...string) *CounterVec {
	return &CounterVec{name: name, help: help, v: newVec(labels, func() *atomic.Uint64 { return new(atomic.Uint64) })}
}

// Inc adds 1 to the series of values (one per label, in order), made at 0
// on first use.
func (c *CounterVec) Inc(values ...string) { c.v.with(values...).Add(1) }

// Touch makes the series of values at 0 unless it exists, so that it is
// exposed before its first Inc.
func (c *CounterVec) Touch(values ...string) { c.v.with(values...) }

// Names is c's one family name.
func (c *CounterVec) Names() []string { return []string{c.name} }

// Collect appends c's family.
func (c *CounterVec) Collect(fams []Family) []Family {
	f := Family{Name: c.name, Help: c.help, Type: CounterType, Series: make([]Series, 0, c.v.size())}
	c.v.each(func(labels []Label, n *atomic.Uint64) {
		f.Series = append(f.Series, Series{Labels: labels, Value: float64(n.Load())})
	})
	return append(fams, f)
}
