package daemon

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// notifySocket is a real unix datagram socket standing in for systemd's
// notify socket; every datagram it receives is sent on msgs, in order.
type notifySocket struct {
	path string
	msgs chan string
}

// listenNotify opens a notify socket that lives until the test ends.
func listenNotify(t testing.TB) *notifySocket {
	t.Helper()
	// A short path: unix socket paths are limited to 108 bytes.
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
	ns := &notifySocket{path: path, msgs: make(chan string, 10000)}
	done := make(chan struct{})
	go func() { // drains the socket as systemd does, until it is closed
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return ns
}

// getenv is an environment holding NOTIFY_SOCKET and the given pairs.
func (ns *notifySocket) getenv(pairs ...string) func(string) string {
	env := map[string]string{"NOTIFY_SOCKET": ns.path}
	for i := 0; i+1 < len(pairs); i += 2 {
		env[pairs[i]] = pairs[i+1]
	}
	return func(k string) string { return env[k] }
}
