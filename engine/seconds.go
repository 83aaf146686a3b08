package engine

import (
	"math"
	"time"
)

// Seconds converts a number of seconds to a duration, rounded to the
// nanosecond. It reports false for NaN, infinities and values past
// time.Duration's range (about 292 years): never a wrap-around. The
// handlers file and the command-line duration flags both take plain
// seconds through it.
func Seconds(sec float64) (time.Duration, bool) {
	ns := math.Round(sec * float64(time.Second))
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, false
	}
	return time.Duration(ns), true
}
