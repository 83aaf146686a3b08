package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unix datagram socket standing in for systemd's notify
// socket and returns its NOTIFY_SOCKET value and a function that reads the
// next message (failing the test after a generous deadline).
func listen(t *testing.T, name string) (string, func() string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return name, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:n])
	}
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestSequence(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path socket", filepath.Join(t.TempDir(), "notify")},
		{"abstract socket", fmt.Sprintf("@methodd-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, next := listen(t, tc.socket)
			n := New(env("NOTIFY_SOCKET", sock)).WithClock(func() (time.Duration, error) {
				return 1234567890 * time.Microsecond, nil
			})
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			steps := []struct {
				send func() error
				want string
			}{
				{n.Ready, "READY=1"},
				{func() error { return n.Status("connected\nmethods: 3") }, "STATUS=connected methods: 3"},
				{n.Reloading, "RELOADING=1\nMONOTONIC_USEC=1234567890"},
				{func() error { return n.Notify(FieldReady, StatusField("reloaded")) }, "READY=1\nSTATUS=reloaded"},
				{n.Watchdog, "WATCHDOG=1"},
				{n.Stopping, "STOPPING=1"},
			}
			for i, s := range steps {
				if err := s.send(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got := next(); got != s.want {
					t.Fatalf("step %d: got %q, want %q", i, got, s.want)
				}
			}
		})
	}
}

func TestReloadingUsesCLOCK_MONOTONIC(t *testing.T) {
	sock, next := listen(t, filepath.Join(t.TempDir(), "notify"))
	n := New(env("NOTIFY_SOCKET", sock))
	before, err := Monotonic()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	after, _ := Monotonic()
	msg := next()
	v, ok := strings.CutPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=")
	if !ok {
		t.Fatalf("got %q, want RELOADING=1 then MONOTONIC_USEC", msg)
	}
	usec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC %q: %v", v, err)
	}
	if usec < before.Microseconds() || usec > after.Microseconds() {
		t.Fatalf("MONOTONIC_USEC=%d, want within [%d, %d]", usec, before.Microseconds(), after.Microseconds())
	}
	// CLOCK_MONOTONIC counts from boot, as /proc/uptime does (which also
	// includes suspend time, hence only an upper bound).
	raw, err := os.ReadFile("/proc/uptime")
	if err == nil {
		up, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
		if float64(usec)/1e6 > up+1 {
			t.Fatalf("MONOTONIC_USEC=%d is later than the uptime %.2fs: not CLOCK_MONOTONIC", usec, up)
		}
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	for name, n := range map[string]*Notifier{"unset": New(env()), "nil": nil, "zero": {}} {
		if n.Enabled() {
			t.Errorf("%s: Enabled() = true", name)
		}
		for i, f := range []func() error{n.Ready, n.Reloading, n.Stopping, n.Watchdog, func() error { return n.Status("x") }} {
			if err := f(); err != nil {
				t.Errorf("%s: call %d: %v, want nil", name, i, err)
			}
		}
	}
}

func TestErrorsAreReturned(t *testing.T) {
	n := New(env("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens")))
	if err := n.Ready(); err == nil {
		t.Error("Ready to a missing socket: got nil error")
	}
	sock, _ := listen(t, filepath.Join(t.TempDir(), "notify"))
	n = New(env("NOTIFY_SOCKET", sock))
	if err := n.Notify("READY=1\nSTATUS=x"); err == nil {
		t.Error("a field with a newline: got nil error")
	}
	broken := errors.New("no clock")
	if err := n.WithClock(func() (time.Duration, error) { return 0, broken }).Reloading(); !errors.Is(err, broken) {
		t.Errorf("Reloading with a failing clock: got %v, want %v", err, broken)
	}
}

func TestFullSocketDoesNotBlock(t *testing.T) {
	sock, _ := listen(t, filepath.Join(t.TempDir(), "notify")) // never read
	n := New(env("NOTIFY_SOCKET", sock))
	var err error
	for i := 0; i < 100000 && err == nil; i++ {
		err = n.Status(strings.Repeat("x", 1000))
	}
	if err == nil {
		t.Fatal("100000 sends to a socket nobody reads all succeeded; want a timeout once it is full")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("send to a full socket: got %v, want a deadline error", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name   string
		getenv func(string) string
		want   time.Duration
		ok     bool
	}{
		{"unset", env(), 0, false},
		{"set, no pid", env("WATCHDOG_USEC", "30000000"), 30 * time.Second, true},
		{"set, our pid", env("WATCHDOG_USEC", "5000000", "WATCHDOG_PID", "4242"), 5 * time.Second, true},
		{"set, other pid", env("WATCHDOG_USEC", "5000000", "WATCHDOG_PID", "1"), 0, false},
		{"garbage", env("WATCHDOG_USEC", "soon"), 0, false},
		{"zero", env("WATCHDOG_USEC", "0"), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := WatchdogInterval(tc.getenv, pid)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("WatchdogInterval = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
