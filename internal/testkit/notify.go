package testkit

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NotifySocket is a real unix datagram socket standing in for systemd's
// notify socket ($NOTIFY_SOCKET, sd_notify(3)). Every datagram it receives
// is sent on Msgs, in the order received; it lives until the test ends.
type NotifySocket struct {
	Path string
	Msgs chan string
}

// ListenNotify opens a NotifySocket in a private directory with a short
// path (unix socket paths hold at most 107 bytes).
func ListenNotify(t testing.TB) *NotifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ns := &NotifySocket{Path: path, Msgs: make(chan string, 10000)}
	done := make(chan struct{})
	go func() { // drains the socket as systemd does, until it is closed
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.Msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return ns
}

// Env is the NOTIFY_SOCKET entry for a child process's environment.
func (ns *NotifySocket) Env() string { return "NOTIFY_SOCKET=" + ns.Path }

// Getenv is an environment holding NOTIFY_SOCKET and the given key, value
// pairs.
func (ns *NotifySocket) Getenv(pairs ...string) func(string) string {
	env := map[string]string{"NOTIFY_SOCKET": ns.Path}
	for i := 0; i+1 < len(pairs); i += 2 {
		env[pairs[i]] = pairs[i+1]
	}
	return func(k string) string { return env[k] }
}

// WaitReady waits for a notification holding the line READY=1 (start-up
// complete), failing t after d.
func (ns *NotifySocket) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-ns.Msgs:
			for line := range strings.SplitSeq(m, "\n") {
				if line == "READY=1" {
					return
				}
			}
		case <-deadline:
			t.Fatalf("no READY=1 on the notify socket within %v", d)
		}
	}
}
