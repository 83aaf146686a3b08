package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// lifecycle returns the next notification that is not only STATUS=,
// failing after a deadline.
func lifecycle(t *testing.T, ns *testkit.NotifySocket) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-ns.Msgs:
			if !strings.HasPrefix(m, "STATUS=") {
				return m
			}
		case <-deadline:
			t.Fatal("no lifecycle message from the daemon within 30 s")
			return ""
		}
	}
}

// TestRunSystemdNotifyAndSecrets runs the daemon under a fake systemd and
// checks the exact lifecycle sequence on NOTIFY_SOCKET: READY=1 only once
// subscribed, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a good
// and a rejected reload, STOPPING=1 at the end. Along the way it captures
// every debug-level log line of a full session (calls, failures, reloads, a
// SAS renewal) and asserts that neither the device key nor any SAS token or
// signature ever appears.
func TestRunSystemdNotifyAndSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
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
	roots := testkit.CertPool(t, info.CAFile)
	path := filepath.Join(t.TempDir(), "handlers.yaml")
	config := func(version string) string {
		return fmt.Sprintf("version: 1\nmethods:\n  v:\n    reply: {payload: '%q'}\n", version)
	}
	renameInto(t, path, config("one"))
	opts := handlersfile.Options{DaemonUID: os.Geteuid()}
	loaded, err := handlersfile.Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}

	ns := testkit.ListenNotify(t)
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Engine.Logger = logger
	reloads := make(chan ReloadResult, 100)
	renewed := make(chan struct{}, 100)
	runCtx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	go func() {
		exited <- Run(runCtx, Config{
			Path: path, Loaded: loaded, Load: opts,
			Device:   device.Config{Identity: cs, RootCAs: roots, SASTTL: 5 * time.Second},
			Getenv:   ns.Getenv(),
			Logger:   logger,
			OnReload: func(r ReloadResult) { reloads <- r },
			OnState: func(s device.State) {
				if s.Kind == device.Connected && s.Renewal {
					renewed <- struct{}{}
				}
			},
		})
	}()
	nextReload := func() ReloadResult {
		t.Helper()
		for {
			select {
			case r := <-reloads:
				if r.Outcome != ReloadUnchanged {
					return r
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no reload within 30 s")
			}
		}
	}

	call := func(method, payload string) (iothub.MethodResult, error) {
		return hub.Invoke(ctx, "gw", "", iothub.MethodRequest{MethodName: method, Payload: []byte(payload), ResponseTimeoutInSeconds: 10})
	}
	expectReply := func(method, want string) {
		t.Helper()
		r, err := call(method, "null")
		if err != nil || r.Status != 200 || string(r.Payload) != want {
			t.Fatalf("%s: got %d %s %v, want 200 %s", method, r.Status, r.Payload, err, want)
		}
	}

	// Start: READY=1 arrives only once the subscription is in place, so a
	// call with connect timeout 0 made right after it must be delivered.
	if m := lifecycle(t, ns); !strings.HasPrefix(m, "READY=1\nSTATUS=connected as gw; 3 methods") {
		t.Fatalf("first lifecycle message %q, want READY=1 with a connected STATUS", m)
	}
	expectReply("v", `"one"`)

	// A good reload: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	renameInto(t, path, config("two"))
	if r := nextReload(); r.Outcome != ReloadApplied {
		t.Fatalf("reload %v (%v), want applied", r.Outcome, r.Err)
	}
	reloading := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[0-9]+$`)
	if m := lifecycle(t, ns); !reloading.MatchString(m) {
		t.Fatalf("got %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := lifecycle(t, ns); !strings.HasPrefix(m, "READY=1\nSTATUS=connected as gw; 3 methods") || !strings.Contains(m, "reloaded") {
		t.Fatalf("got %q, want READY=1 after the reload", m)
	}
	expectReply("v", `"two"`)

	// A rejected reload: the same envelope, the old set keeps answering,
	// the problem comes with its position.
	renameInto(t, path, "version: 1\nmethods:\n  v:\n    reply: {payload: 'nosuchname'}\n")
	if r := nextReload(); r.Outcome != ReloadRejected || len(r.Diagnostics) == 0 || r.Diagnostics[0].Line != 4 {
		t.Fatalf("reload %v with %v, want rejected at line 4", r.Outcome, r.Diagnostics)
	}
	if m := lifecycle(t, ns); !reloading.MatchString(m) {
		t.Fatalf("got %q, want RELOADING=1", m)
	}
	if m := lifecycle(t, ns); !strings.HasPrefix(m, "READY=1\nSTATUS=") || !strings.Contains(m, "reload rejected") {
		t.Fatalf("got %q, want READY=1 with the rejection in STATUS", m)
	}
	expectReply("v", `"two"`)

	// Failures and a renewal (5 s token, renewed at ~4 s), under calls.
	if r, _ := call("nosuch", `{"a":1}`); r.Status != 404 {
		t.Errorf("unknown method: status %d, want 404", r.Status)
	}
	select {
	case <-renewed:
	case <-time.After(30 * time.Second):
		t.Fatal("no SAS renewal within 30 s")
	}
	expectReply("v", `"two"`)

	stop()
	if m := lifecycle(t, ns); m != "STOPPING=1" {
		t.Fatalf("got %q, want STOPPING=1", m)
	}
	if err := <-exited; err != nil {
		t.Fatalf("Run: %v", err)
	}

	out := logs.String()
	if out == "" {
		t.Fatal("nothing was logged at debug level")
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

func renameInto(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".handlers.yaml.tmp")
	writeConfig(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
