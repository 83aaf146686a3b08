package invoke

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Summary tallies the outcomes of a fan-out. The zero value is ready to use;
// it is not safe for concurrent use (InvokeMany's out callback is serial).
type Summary struct {
	Counts    [KindError + 1]int
	latencies []time.Duration
}

// Add counts one outcome; only calls that were made contribute a latency.
func (s *Summary) Add(o Outcome) {
	s.Counts[o.Kind()]++
	if o.Attempts > 0 {
		s.latencies = append(s.latencies, o.Latency)
	}
}

// Total is the number of outcomes added.
func (s *Summary) Total() int {
	n := 0
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Answered is the number of outcomes in which a device replied (any status).
func (s *Summary) Answered() int { return s.Counts[KindOK] + s.Counts[KindDeviceError] }

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of the
// latencies, or 0 when there are none.
func (s *Summary) Percentile(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	rank := int(p/100*float64(len(l)) + 0.999999)
	return l[min(max(rank, 1), len(l))-1]
}

// String renders the summary line, e.g.
// "200 calls: 198 ok, 1 device-error, 1 unreachable, 0 timeout, 0 error; latency p50 12ms p99 48ms".
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls:", s.Total())
	for k := KindOK; k <= KindError; k++ {
		sep := ","
		if k == KindOK {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %d %s", sep, s.Counts[k], k)
	}
	fmt.Fprintf(&b, "; latency p50 %s p99 %s", roundDur(s.Percentile(50)), roundDur(s.Percentile(99)))
	return b.String()
}

func roundDur(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}
