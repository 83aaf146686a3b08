package metrics

import (
	"strings"
	"sync"
)

// labelSep joins label values into a map key; it is not valid UTF-8, so
// it cannot occur in a label value the daemon gives.
const labelSep = "\xff"

// vec is a set of series of one family keyed by their label values, each
// series a *T made by newT on first use. Its methods are safe for
// concurrent use; a series once made stays.
type vec[T any] struct {
	labels []string
	newT   func() *T
	mu     sync.RWMutex
	series map[string]*vecSeries[T]
}

// vecSeries is one series of a vec: its label values and its state.
type vecSeries[T any] struct {
	values []string
	t      *T
}

// newVec returns an empty vec of series labelled by labels.
func newVec[T any](labels []string, newT func() *T) *vec[T] {
	return &vec[T]{labels: labels, newT: newT, series: map[string]*vecSeries[T]{}}
}

// with is the series of values (as many as the vec's labels, in their
// order), made on first use. It panics when the count is wrong: that is a
// bug of the caller, not of its input.
func (v *vec[T]) with(values ...string) *T {
	if len(values) != len(v.labels) {
		panic("metrics: got label values " + strings.Join(values, ",") + " for labels " + strings.Join(v.labels, ","))
	}
	if t := v.lookup(values); t != nil {
		return t
	}
	return v.create(values)
}

// lookup is the series of values if it exists. Its key does not escape,
// so the common case allocates nothing.
func (v *vec[T]) lookup(values []string) *T {
	var key string
	switch len(values) {
	case 1:
		key = values[0]
	case 2:
		key = values[0] + labelSep + values[1]
	default:
		key = strings.Join(values, labelSep)
	}
	v.mu.RLock()
	s := v.series[key]
	v.mu.RUnlock()
	if s == nil {
		return nil
	}
	return s.t
}

// create makes the series of values unless another caller just did.
func (v *vec[T]) create(values []string) *T {
	key := strings.Join(values, labelSep)
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.series[key]; s != nil {
		return s.t
	}
	s := &vecSeries[T]{values: append([]string(nil), values...), t: v.newT()}
	v.series[key] = s
	return s.t
}

// each calls f with the labels and state of every series, holding the
// read lock: f must not call into v.
func (v *vec[T]) each(f func(labels []Label, t *T)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, s := range v.series {
		labels := make([]Label, len(v.labels))
		for i, name := range v.labels {
			labels[i] = Label{Name: name, Value: s.values[i]}
		}
		f(labels, s.t)
	}
}

// size is the number of series.
func (v *vec[T]) size() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.series)
}
