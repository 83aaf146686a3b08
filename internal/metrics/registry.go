package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Type is a metric family's type, spelt as the text format's # TYPE line
// spells it.
type Type string

// The types of family a Registry exposes.
const (
	CounterType   Type = "counter"
	GaugeType     Type = "gauge"
	HistogramType Type = "histogram"
	SummaryType   Type = "summary"
)

// Label is one label of a series.
type Label struct{ Name, Value string }

// Bucket is one bucket of a histogram series: the observations ≤
// UpperBound, cumulative.
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Quantile is one quantile of a summary series.
type Quantile struct{ Quantile, Value float64 }

// Series is one series of a family: Value for a counter or a gauge;
// Buckets (cumulative, the last one +Inf), Sum and Count for a histogram;
// Quantiles, Sum and Count for a summary.
type Series struct {
	Labels    []Label
	Value     float64
	Buckets   []Bucket
	Quantiles []Quantile
	Sum       float64
	Count     uint64
}

// Family is one metric family as scraped: its name, HELP text, type and
// series.
type Family struct {
	Name, Help string
	Type       Type
	Series     []Series
}

// Collector yields families at scrape time; its methods are safe for
// concurrent use.
type Collector interface {
	// Names are the names of the families Collect may yield.
	Names() []string
	// Collect appends the families it has now to fams (only families of
	// Names, each at most once) and returns the result.
	Collect(fams []Family) []Family
}

// Registry is the set of Collectors one scrape reads. Its methods are safe
// for concurrent use. The zero Registry is not usable: see NewRegistry.
type Registry struct {
	mu         sync.Mutex
	names      map[string]bool
	collectors []Collector
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

// ErrDuplicate is the error of a Register of a family name the Registry
// already holds.
var ErrDuplicate = errors.New("family already registered")

// Register adds c. It fails, adding nothing, when one of c's names is not
// a valid metric name or is already registered (ErrDuplicate).
func (r *Registry) Register(c Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := c.Names()
	for i, n := range names {
		if !validMetricName(n) {
			return fmt.Errorf("metrics: register %q: not a valid metric name", n)
		}
		if r.names[n] || slices.Contains(names[:i], n) {
			return fmt.Errorf("metrics: register %q: %w", n, ErrDuplicate)
		}
	}
	for _, n := range names {
		r.names[n] = true
	}
	r.collectors = append(r.collectors, c)
	return nil
}

// Gather collects every Collector now. Families come sorted by name,
// families without series are left out, each series' labels are sorted by
// name and a family's series by their labels: the same state always
// gathers the same way.
func (r *Registry) Gather() []Family {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	var fams []Family
	for _, c := range cs {
		fams = c.Collect(fams)
	}
	fams = slices.DeleteFunc(fams, func(f Family) bool { return len(f.Series) == 0 })
	for _, f := range fams {
		for _, s := range f.Series {
			slices.SortFunc(s.Labels, func(a, b Label) int { return cmp.Compare(a.Name, b.Name) })
		}
		slices.SortFunc(f.Series, compareSeries)
	}
	slices.SortFunc(fams, func(a, b Family) int { return cmp.Compare(a.Name, b.Name) })
	return fams
}

// compareSeries orders series by their labels' values, then names, pair
// by pair.
func compareSeries(a, b Series) int {
	for i := range min(len(a.Labels), len(b.Labels)) {
		if c := cmp.Compare(a.Labels[i].Value, b.Labels[i].Value); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Labels[i].Name, b.Labels[i].Name); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.Labels), len(b.Labels))
}

// validMetricName reports whether n matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
