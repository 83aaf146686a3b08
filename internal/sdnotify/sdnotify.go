// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// newline-separated VARIABLE=value fields sent as one datagram to the unix
// socket named by $NOTIFY_SOCKET. Without $NOTIFY_SOCKET every method is a
// no-op, so the daemon calls them unconditionally. Stdlib only.
package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Fields the daemon sends (systemd.service(5), sd_notify(3)).
const (
	FieldReady     = "READY=1"
	FieldReloading = "RELOADING=1"
	FieldStopping  = "STOPPING=1"
	FieldWatchdog  = "WATCHDOG=1"
)

// sendTimeout bounds one send: a manager that does not drain its socket
// must not stall the daemon (a full datagram socket blocks the writer).
const sendTimeout = time.Second

// Notifier sends notifications to the service manager. The zero value and a
// nil *Notifier are valid and send nothing. It keeps no connection: each
// notification is one datagram on a fresh socket, so a Notifier is safe for
// concurrent use.
type Notifier struct {
	addr *net.UnixAddr // nil: not running under a notifying manager
	mono func() (time.Duration, error)
}

// New returns a Notifier for the socket in getenv("NOTIFY_SOCKET"): a path,
// or an abstract socket when it starts with '@'. With the variable unset or
// empty the Notifier is a no-op. MONOTONIC_USEC values come from
// CLOCK_MONOTONIC.
func New(getenv func(string) string) *Notifier {
	n := &Notifier{mono: Monotonic}
	if s := getenv("NOTIFY_SOCKET"); s != "" {
		n.addr = &net.UnixAddr{Name: s, Net: "unixgram"} // Go maps a leading '@' to the abstract namespace
	}
	return n
}

// WithClock returns a copy of n whose Reloading reads the monotonic time
// from mono instead of CLOCK_MONOTONIC (for tests).
func (n *Notifier) WithClock(mono func() (time.Duration, error)) *Notifier {
	if n == nil {
		return nil
	}
	c := *n
	c.mono = mono
	return &c
}

// Enabled reports whether notifications are actually sent.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends fields (each "VARIABLE=value", no newlines) as one datagram.
// It returns nil without sending when n is not Enabled, and the socket error
// otherwise (including a timeout after one second when the receiver's queue
// is full); it never blocks longer and never panics.
func (n *Notifier) Notify(fields ...string) error {
	if !n.Enabled() || len(fields) == 0 {
		return nil
	}
	for _, f := range fields {
		if strings.ContainsRune(f, '\n') || !strings.Contains(f, "=") {
			return fmt.Errorf("sdnotify: malformed field %q", f)
		}
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	msg := strings.Join(fields, "\n")
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sdnotify: send %q: %w", msg, err)
	}
	return nil
}

// Ready sends READY=1: start-up (or a reload) is complete.
func (n *Notifier) Ready() error { return n.Notify(FieldReady) }

// Reloading sends RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload
// requires and Type=notify accepts; follow it with Ready when the reload is
// over, whatever its outcome.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	now, err := n.mono()
	if err != nil {
		return fmt.Errorf("sdnotify: monotonic clock: %w", err)
	}
	return n.Notify(FieldReloading, "MONOTONIC_USEC="+strconv.FormatInt(now.Microseconds(), 10))
}

// Stopping sends STOPPING=1: shutdown has begun.
func (n *Notifier) Stopping() error { return n.Notify(FieldStopping) }

// Status sends STATUS=s, the one-line state shown by systemctl status.
func (n *Notifier) Status(s string) error { return n.Notify(StatusField(s)) }

// Watchdog sends WATCHDOG=1, a keep-alive for WatchdogSec=.
func (n *Notifier) Watchdog() error { return n.Notify(FieldWatchdog) }

// StatusField returns "STATUS=s" with line breaks in s replaced by spaces,
// for combining with other fields in one Notify.
func StatusField(s string) string {
	return "STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// WatchdogInterval returns the watchdog timeout systemd expects pings
// within (WATCHDOG_USEC), and false when no watchdog is set for this
// process: the variable is unset or invalid, or WATCHDOG_PID names another
// process than pid. Ping at half the interval or more often.
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, bool) {
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		if got, err := strconv.Atoi(p); err != nil || got != pid {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}
