package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// readyLine is the line of a notification that says start-up is complete
// (sd_notify(3)); methodd sends it once connected and subscribed.
var readyLine = []byte("READY=1")

// notifySocket is a service manager's notification socket, as systemd gives
// one to a Type=notify service in $NOTIFY_SOCKET: a unixgram socket in a
// private temporary directory. It reads every datagram until Close, so that
// a sender never blocks on a full queue, and records when the first one
// holding the line READY=1 arrived.
type notifySocket struct {
	conn *net.UnixConn
	dir  string
	path string

	ready    chan struct{} // closed at the first READY=1
	once     sync.Once
	readyAt  time.Time // set before ready is closed
	readyMsg string    // the notification that held it; set before ready is closed

	done chan struct{} // closed when the reader has returned
}

// listenNotify opens a notification socket. The caller must Close it once
// the process it was given to has exited.
func listenNotify() (*notifySocket, error) {
	dir, err := os.MkdirTemp("", "mn-") // short: a socket path holds 107 bytes
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "notify")
	if len(path) > maxSocketPath {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("notify socket path %s is longer than %d bytes: set TMPDIR to a shorter directory", path, maxSocketPath)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	n := &notifySocket{conn: conn, dir: dir, path: path, ready: make(chan struct{}), done: make(chan struct{})}
	go n.read()
	return n, nil
}

// env is the variable that names the socket to a child process.
func (n *notifySocket) env() string { return "NOTIFY_SOCKET=" + n.path }

// read takes datagrams until the socket is closed.
func (n *notifySocket) read() {
	defer close(n.done)
	buf := make([]byte, 64<<10)
	for {
		k, _, err := n.conn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		if isReady(buf[:k]) {
			n.once.Do(func() {
				n.readyAt, n.readyMsg = time.Now(), string(buf[:k])
				close(n.ready)
			})
		}
	}
}

// isReady reports whether a notification (newline-separated VARIABLE=value
// fields) holds the field READY=1.
func isReady(msg []byte) bool {
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if bytes.Equal(line, readyLine) {
			return true
		}
	}
	return false
}

// Close closes the socket, waits for its reader and removes its directory.
func (n *notifySocket) Close() error {
	err := n.conn.Close()
	<-n.done
	return firstError(err, os.RemoveAll(n.dir))
}
