package main

import (
	"os"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/sdnotify"
)

func TestIsReady(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{"READY=1", true},
		{"READY=1\nSTATUS=connected as dev", true},
		{"STATUS=connected as dev\nREADY=1", true},
		{"STATUS=READY=1", false},
		{"READY=10", false},
		{"READY=0", false},
		{"RELOADING=1\nMONOTONIC_USEC=12", false},
		{"", false},
	} {
		if got := isReady([]byte(c.msg)); got != c.want {
			t.Errorf("isReady(%q) = %v, want %v", c.msg, got, c.want)
		}
	}
}

// TestNotifySocket: notifications without READY=1 leave the socket not
// ready; the first with READY=1, from sdnotify (the daemon's sender), makes
// it ready; Close removes the socket's directory.
func TestNotifySocket(t *testing.T) {
	n, err := listenNotify()
	if err != nil {
		t.Fatal(err)
	}
	sd := sdnotify.New(func(k string) string {
		if k == "NOTIFY_SOCKET" {
			return n.path
		}
		return ""
	})
	for _, f := range []string{"STATUS=READY=1", "READY=10", sdnotify.FieldStopping} {
		if err := sd.Notify(f); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := sd.Notify(sdnotify.FieldReady, sdnotify.StatusField("connected")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-n.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("READY=1 sent, but the socket is not ready after 10s")
	}
	// Datagrams arrive in the order sent: only the READY=1 ones may have made it ready.
	if want := "READY=1\nSTATUS=connected"; n.readyMsg != want || n.readyAt.IsZero() {
		t.Errorf("ready by %q at %v, want by %q", n.readyMsg, n.readyAt, want)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(n.dir); !os.IsNotExist(err) {
		t.Errorf("after Close, %s: %v, want it gone", n.dir, err)
	}
}
