package watch

import "time"

// debouncer decides when Run checks the file: debounce after the last
// relevant event of a burst, but no later than maxDelayFactor debounces
// after the burst's first event, and at once after a Trigger. It starts with
// the start-up check due, counted as the first event of a burst. Run's
// goroutine owns it; it reads the clock through the time package only.
type debouncer struct {
	debounce time.Duration
	timer    *time.Timer
	first    time.Time // first event of the due burst; zero when none
	due      bool      // a check is due when timer fires
	forced   bool      // the due check was asked for by Trigger
}

// newDebouncer returns a debouncer with the start-up check due after
// debounce, which must be positive.
func newDebouncer(debounce time.Duration) *debouncer {
	return &debouncer{
		debounce: debounce,
		timer:    time.NewTimer(debounce),
		first:    time.Now(),
		due:      true,
	}
}

// C delivers when a check may be due; call fire after each receive.
func (b *debouncer) C() <-chan time.Time { return b.timer.C }

// event records a relevant event (or a watch error, which calls for a
// rescan) happening now and (re)arms the timer per checkDelay.
func (b *debouncer) event() {
	now := time.Now()
	if !b.due || b.first.IsZero() {
		b.first = now
	}
	b.due = true
	b.reset(checkDelay(b.first, now, b.debounce))
}

// force makes a forced check due at once; a pending burst joins it.
func (b *debouncer) force() {
	b.due, b.forced = true, true
	b.reset(0)
}

// fire is called after a receive from C. It reports whether a check is due
// and whether it is forced, and ends the burst: the caller checks now.
func (b *debouncer) fire() (due, forced bool) {
	due, forced = b.due, b.forced
	b.first, b.due, b.forced = time.Time{}, false, false
	return due, forced
}

// stop releases the timer.
func (b *debouncer) stop() { b.timer.Stop() }

// reset stops the timer, drains a fire that was not received, and starts it
// again for d.
func (b *debouncer) reset(d time.Duration) {
	if !b.timer.Stop() {
		select {
		case <-b.timer.C:
		default:
		}
	}
	b.timer.Reset(d)
}

// checkDelay returns how long to wait, at now, before checking for a burst
// whose first event came at first: debounce, but no longer than until
// maxDelayFactor debounces after first, and zero once that is past.
func checkDelay(first, now time.Time, debounce time.Duration) time.Duration {
	limit := first.Add(maxDelayFactor * debounce).Sub(now)
	return max(min(debounce, limit), 0)
}
