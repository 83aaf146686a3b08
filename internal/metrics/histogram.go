package metrics

import (
	"math"
	"slices"
	"sort"
	"sync/atomic"
)

// HistogramVec is a histogram family whose series are keyed by label
// values. Its methods are safe for concurrent use and take no lock but
// the series map's read lock.
type HistogramVec struct {
	name, help string
	bounds     []float64 // sorted upper bounds, without +Inf
	v          *vec[histogram]
}

// histogram is one series: counts[i] observations fell in bucket i (the
// last one is above every bound), and sum is their sum's float bits.
type histogram struct {
	counts []atomic.Uint64
	sum    atomic.Uint64
}

// NewHistogramVec returns a HistogramVec without series named name, with
// help as its HELP text, buckets bounded by bounds (sorted ascending, +Inf
// implied) and its series labelled by labels. It panics when bounds are
// not sorted: they are the program's constants.
func NewHistogramVec(name, help string, bounds []float64, labels ...string) *HistogramVec {
	if !slices.IsSorted(bounds) {
		panic("metrics: histogram " + name + ": bounds not sorted")
	}
	bounds = slices.Clone(bounds)
	return &HistogramVec{name: name, help: help, bounds: bounds, v: newVec(labels, func() *histogram {
		return &histogram{counts: make([]atomic.Uint64, len(bounds)+1)}
	})}
}

// Observe adds x to the series of values (one per label, in order), made
// empty on first use.
func (h *HistogramVec) Observe(x float64, values ...string) {
	s := h.v.with(values...)
	s.counts[sort.SearchFloat64s(h.bounds, x)].Add(1)
	for {
		old := s.sum.Load()
		if s.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+x)) {
			return
		}
	}
}

// Names is h's one family name.
func (h *HistogramVec) Names() []string { return []string{h.name} }

// Collect appends h's family. A series' Count is the sum of its buckets,
// so the +Inf bucket always equals it even while observations land.
func (h *HistogramVec) Collect(fams []Family) []Family {
	f := Family{Name: h.name, Help: h.help, Type: HistogramType, Series: make([]Series, 0, h.v.size())}
	h.v.each(func(labels []Label, s *histogram) {
		buckets := make([]Bucket, len(s.counts))
		var total uint64
		for i := range s.counts {
			total += s.counts[i].Load()
			buckets[i] = Bucket{UpperBound: math.Inf(1), Count: total}
			if i < len(h.bounds) {
				buckets[i].UpperBound = h.bounds[i]
			}
		}
		f.Series = append(f.Series, Series{Labels: labels, Buckets: buckets,
			Sum: math.Float64frombits(s.sum.Load()), Count: total})
	})
	return append(fams, f)
}
