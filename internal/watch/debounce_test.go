package watch

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestCheckDelay(t *testing.T) {
	const d = 100 * time.Millisecond
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		since time.Duration // from the burst's first event to now
		want  time.Duration
	}{
		{"first event of a burst", 0, d},
		{"cap far away", 5 * d, d},
		{"cap exactly one debounce away", (maxDelayFactor - 1) * d, d},
		{"cap closer than a debounce", maxDelayFactor*d - 30*time.Millisecond, 30 * time.Millisecond},
		{"at the cap", maxDelayFactor * d, 0},
		{"past the cap", maxDelayFactor*d + 7*d, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkDelay(first, first.Add(tc.since), d); got != tc.want {
				t.Fatalf("checkDelay(first, first+%v, %v) = %v, want %v", tc.since, d, got, tc.want)
			}
		})
	}
}

// step is one input to a debouncer: a relevant event or a Trigger, at a
// time counted from the debouncer's creation.
type step struct {
	at    time.Duration
	force bool
}

// fire is one receive from a debouncer's timer: when, and what fire said.
type fire struct {
	at          time.Duration
	due, forced bool
}

// events returns a relevant event every every, from from to to inclusive.
func events(from, to, every time.Duration) []step {
	var out []step
	for at := from; at <= to; at += every {
		out = append(out, step{at: at})
	}
	return out
}

// TestDebouncer drives the debouncer as Run does, in a synctest bubble so
// that times are exact: each case lists its inputs and every timer fire it
// must cause within a minute, with the virtual time of each.
func TestDebouncer(t *testing.T) {
	const ms = time.Millisecond // the debounce is 100 ms
	tests := []struct {
		name  string
		steps []step // in time order; steps at the same time apply in order
		want  []fire
	}{
		{"start-up check after the debounce", nil,
			[]fire{{100 * ms, true, false}}},
		{"event during the start-up debounce postpones it",
			[]step{{at: 50 * ms}},
			[]fire{{150 * ms, true, false}}},
		{"event after the start-up check starts a burst",
			[]step{{at: 200 * ms}},
			[]fire{{100 * ms, true, false}, {300 * ms, true, false}}},
		{"steady stream from the start is capped at ten debounces after Run began",
			events(30*ms, 1410*ms, 30*ms),
			[]fire{{1000 * ms, true, false}, {1510 * ms, true, false}}},
		{"steady stream is capped at ten debounces after its first event",
			events(200*ms, 1400*ms, 30*ms),
			[]fire{{100 * ms, true, false}, {1200 * ms, true, false}, {1500 * ms, true, false}}},
		{"trigger checks at once, forced",
			[]step{{at: 200 * ms, force: true}},
			[]fire{{100 * ms, true, false}, {200 * ms, true, true}}},
		{"trigger during the start-up debounce replaces the start-up check",
			[]step{{at: 50 * ms, force: true}},
			[]fire{{50 * ms, true, true}}},
		{"trigger joins a pending burst",
			[]step{{at: 150 * ms}, {at: 180 * ms, force: true}},
			[]fire{{100 * ms, true, false}, {180 * ms, true, true}}},
		{"event right after a trigger waits for quiet, still forced",
			[]step{{at: 200 * ms, force: true}, {at: 200 * ms}},
			[]fire{{100 * ms, true, false}, {300 * ms, true, true}}},
		{"triggers at once coalesce",
			[]step{{at: 200 * ms, force: true}, {at: 200 * ms, force: true}},
			[]fire{{100 * ms, true, false}, {200 * ms, true, true}}},
		{"a forced check does not force the next",
			[]step{{at: 200 * ms, force: true}, {at: 400 * ms}},
			[]fire{{100 * ms, true, false}, {200 * ms, true, true}, {500 * ms, true, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := drive(100*ms, tc.steps, time.Minute)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("timer fires %+v, want %+v", got, tc.want)
				}
			})
		})
	}
}

// drive runs a new debouncer for span of virtual time (call it inside a
// synctest bubble), applying steps at their times as Run's loop would, and
// returns every timer fire.
func drive(debounce time.Duration, steps []step, span time.Duration) []fire {
	b := newDebouncer(debounce)
	defer b.stop()
	start := time.Now()
	end := time.NewTimer(span)
	defer end.Stop()
	var got []fire
	for {
		var next <-chan time.Time
		if len(steps) > 0 {
			next = time.After(steps[0].at - time.Since(start))
		}
		select {
		case <-next:
			for len(steps) > 0 && steps[0].at <= time.Since(start) {
				if steps[0].force {
					b.force()
				} else {
					b.event()
				}
				steps = steps[1:]
			}
		case <-b.C():
			due, forced := b.fire()
			got = append(got, fire{time.Since(start), due, forced})
		case <-end.C:
			return got
		}
	}
}
