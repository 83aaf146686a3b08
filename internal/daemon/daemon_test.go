package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// notifySocket is a real unix datagram socket standing in for systemd.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
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
	t.Cleanup(func() { conn.Close() })
	ns := &notifySocket{path: path, msgs: make(chan string, 256)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			ns.msgs <- string(buf[:n])
		}
	}()
	return ns
}

// next returns the next lifecycle message (one that is not only STATUS=),
// failing after a deadline.
func (ns *notifySocket) next(t *testing.T) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-ns.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if !strings.HasPrefix(m, "STATUS=") {
				return m
			}
		case <-deadline:
			t.Fatal("no lifecycle message from the daemon within 30 s")
		}
	}
}

// TestRunSystemdNotifyAndLogs runs the daemon in-process under a fake
// systemd and checks the exact lifecycle sequence on NOTIFY_SOCKET: READY=1
// only once subscribed, RELOADING=1 (with MONOTONIC_USEC) then READY=1
// around a good and a rejected reload, STOPPING=1 at the end. Along the
// way it captures every debug-level log line of a full session (calls,
// failures, reloads, a SAS renewal) and asserts that neither the device key
// nor any SAS signature ever appears.
func TestRunSystemdNotifyAndLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hub, err := localhub.Start(ctx, localhub.Options{Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: []string{"gw"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	info := hub.Info()
	cs, err := iothub.ParseDeviceConnectionString(info.Devices["gw"])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	csFile := filepath.Join(dir, "cs")
	if err := os.WriteFile(csFile, []byte(info.Devices["gw"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "handlers.yaml")
	config := func(version string) string {
		return fmt.Sprintf("version: 1\nconnection: {ca_file: %s}\nmethods:\n  v:\n    reply: {payload: '%q'}\n", info.CAFile, version)
	}
	renameInto(t, cfg, config("one"))

	ns := listenNotify(t)
	logs := &testkit.SyncBuffer{}
	env := map[string]string{"NOTIFY_SOCKET": ns.path}
	runCtx, stop := context.WithCancel(ctx)
	exited := make(chan int, 1)
	go func() {
		exited <- run(runCtx, []string{"run", "--config", cfg, "--connection-string-file", csFile,
			"--log-level", "debug", "--sas-ttl", "5s"},
			stdio{in: strings.NewReader(""), out: logs, err: logs, getenv: func(k string) string { return env[k] }})
	}()

	call := func(method, payload string) (iothub.MethodResult, *iothub.Error) {
		return hub.Invoke(ctx, "gw", "", iothub.MethodRequest{MethodName: method, Payload: []byte(payload), ResponseTimeoutInSeconds: 10})
	}
	expectReply := func(method, want string) {
		t.Helper()
		r, e := call(method, "null")
		if e != nil || r.Status != 200 || string(r.Payload) != want {
			t.Fatalf("%s: got %d %s %v, want 200 %s\nlogs:\n%s", method, r.Status, r.Payload, e, want, logs)
		}
	}

	// Start: READY=1 arrives only once the subscription is in place, so a
	// call with connect timeout 0 made right after it must be delivered.
	if m := ns.next(t); !strings.HasPrefix(m, "READY=1\nSTATUS=connected as gw; 3 methods") {
		t.Fatalf("first lifecycle message %q, want READY=1 with a connected STATUS", m)
	}
	expectReply("v", `"one"`)

	// A good reload: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	renameInto(t, cfg, config("two"))
	reloading := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[0-9]+$`)
	if m := ns.next(t); !reloading.MatchString(m) {
		t.Fatalf("got %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := ns.next(t); !strings.HasPrefix(m, "READY=1\nSTATUS=connected as gw; 3 methods") || !strings.Contains(m, "reloaded") {
		t.Fatalf("got %q, want READY=1 after the reload", m)
	}
	expectReply("v", `"two"`)

	// A rejected reload: the same envelope, the old set keeps answering,
	// the problem is logged with file:line:col.
	renameInto(t, cfg, "version: 1\nmethods:\n  v:\n    reply: {payload: 'nosuchname'}\n")
	if m := ns.next(t); !reloading.MatchString(m) {
		t.Fatalf("got %q, want RELOADING=1", m)
	}
	if m := ns.next(t); !strings.HasPrefix(m, "READY=1\nSTATUS=") || !strings.Contains(m, "reload rejected") {
		t.Fatalf("got %q, want READY=1 with the rejection in STATUS", m)
	}
	expectReply("v", `"two"`)
	if !strings.Contains(logs.String(), cfg+":4:") {
		t.Errorf("the rejected file's diagnostic (%s:4:COL) is not in the log:\n%s", cfg, logs)
	}

	// Failures and a renewal (5 s token, renewed at ~4 s), under calls.
	if r, _ := call("nosuch", `{"a":1}`); r.Status != 404 {
		t.Errorf("unknown method: status %d, want 404", r.Status)
	}
	waitUntil(t, 30*time.Second, "a SAS renewal", func() bool { return strings.Contains(logs.String(), "renewal=true") })
	expectReply("v", `"two"`)

	stop()
	if m := ns.next(t); m != "STOPPING=1" {
		t.Fatalf("got %q, want STOPPING=1", m)
	}
	if code := <-exited; code != 0 {
		t.Fatalf("run exited %d, want 0\n%s", code, logs)
	}

	out := logs.String()
	for _, needle := range []string{"call", "requestId=", "status=", "durationMs=", "reload rejected", "reloaded", "renewing SAS token"} {
		if !strings.Contains(out, needle) {
			t.Errorf("log lacks %q", needle)
		}
	}
	for name, secret := range map[string]string{
		"device key": cs.SharedAccessKey, "SAS signature": "sig=", "SAS token": "SharedAccessSignature",
		"service connection string": info.ServiceConnectionString,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}
