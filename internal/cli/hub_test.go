package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
)

// TestHubCommandUsage: flag and argument errors exit 2 before anything
// starts (the hub would otherwise bind the default ports).
func TestHubCommandUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"bad log format", []string{"hub", "--dir", t.TempDir(), "--log-format", "xml"}, nil},
		{"bad log level", []string{"hub", "--dir", t.TempDir(), "--log-level", "loud"}, nil},
		{"extra argument", []string{"hub", "--dir", t.TempDir(), "extra"}, nil},
		{"unknown flag", []string{"hub", "--nope"}, nil},
		{"no state dir", []string{"hub"}, map[string]string{}},
		{"dps ws without dps", []string{"hub", "--dir", t.TempDir(), "--dps-ws-addr", "127.0.0.1:0"}, nil},
		{"enrollment without dps", []string{"hub", "--dir", t.TempDir(), "--enrollment-group", "g"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			s := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return tc.env[k] }}
			if code := Run(t.Context(), tc.args, s); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, exitUsage, errb.String())
			}
		})
	}
}

// TestHubCommandServesDPS: methodd hub with --dps-addr, --dps-ws-addr and
// an enrollment group serves both DPS listeners and lists them with the
// group's key in hub.json.
func TestHubCommandServesDPS(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errb testkit.SyncBuffer
	go func() {
		done <- Run(ctx, []string{"hub", "--dir", dir, "--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
			"--dps-addr", "127.0.0.1:0", "--dps-ws-addr", "127.0.0.1:0", "--enrollment-group", "gateways"},
			Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }})
	}()
	var info localhub.Info
	testkit.Eventually(t, 30*time.Second, "hub.json with the DPS listeners", func() bool {
		i, err := localhub.ReadInfo(dir)
		info = i
		return err == nil && i.DPS != nil
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("hub exited %d: %s", code, errb.String())
	}
	if d := info.DPS; d.Addr == "" || d.WSAddr == "" || d.IDScope == "" || d.Groups["gateways"] == "" {
		t.Errorf("hub.json dps: %+v", d)
	}
}
