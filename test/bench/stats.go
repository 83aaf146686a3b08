package main

import (
	"slices"
	"time"
)

// summary is the latency distribution of one cell.
type summary struct {
	n             int
	p50, p90, p99 time.Duration
	max           time.Duration
}

// summarize sorts d in place and returns its percentiles (nearest rank).
func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	slices.Sort(d)
	return summary{n: len(d), p50: percentile(d, 50), p90: percentile(d, 90), p99: percentile(d, 99), max: d[len(d)-1]}
}

// percentile returns the nearest-rank p-th percentile of sorted d (non-empty).
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 × n), 1-based
	return sorted[max(rank, 1)-1]
}
