package localhub_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
)

// TestSecondHubOnDirRefused: a second Start on a dir whose hub runs fails
// with ErrDirLocked naming the holder's pid; after Close the dir is free,
// and Running tells the two states apart.
func TestSecondHubOnDirRefused(t *testing.T) {
	th := startHub(t, localhub.Options{})
	dir := th.opts.Dir
	_, err := localhub.Start(context.Background(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if !errors.Is(err, localhub.ErrDirLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Start: %v; want ErrDirLocked naming pid %d", err, os.Getpid())
	}
	running, holder, err := localhub.Running(dir)
	if err != nil || !running || holder.PID != os.Getpid() {
		t.Fatalf("Running = %v, %+v, %v; want true, pid %d", running, holder, err, os.Getpid())
	}
	if info, _ := localhub.ReadInfo(dir); info.PID != os.Getpid() || info.StartedAt.IsZero() {
		t.Errorf("hub.json pid %d startedAt %v; want %d and a time", info.PID, info.StartedAt, os.Getpid())
	}
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	if running, _, err := localhub.Running(dir); err != nil || running {
		t.Fatalf("after Close: Running = %v, %v; want false", running, err)
	}
	h2, err := localhub.Start(context.Background(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Start after Close: %v", err)
	}
	h2.Close()
}

// TestUnsafeStateDirRefused: a group- or world-writable dir or state
// file, or one owned by another user, is refused with ErrDirUnsafe naming
// it; nothing is started.
func TestUnsafeStateDirRefused(t *testing.T) {
	start := func(dir string) error {
		h, err := localhub.Start(context.Background(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: []string{"dev1"}})
		if err == nil {
			h.Close()
		}
		return err
	}
	cases := []struct {
		name  string
		edit  func(t *testing.T, dir string) string // returns the path the error must name
		owner bool                                  // needs root (chown)
	}{
		{"group-writable dir", func(t *testing.T, dir string) string { chmod(t, dir, 0o770); return dir }, false},
		{"world-writable dir", func(t *testing.T, dir string) string { chmod(t, dir, 0o777); return dir }, false},
		{"group-writable registry.json", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "registry.json")
			chmod(t, p, 0o660)
			return p
		}, false},
		{"world-writable identity", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "identities", "dev1.json")
			chmod(t, p, 0o666)
			return p
		}, false},
		{"registry.json of another user", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "registry.json")
			chown(t, p)
			return p
		}, true},
		{"dir of another user", func(t *testing.T, dir string) string { chown(t, dir); return dir }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner && os.Geteuid() != 0 {
				t.Skip("changing a file's owner needs root")
			}
			dir := t.TempDir()
			if err := start(dir); err != nil {
				t.Fatal(err)
			}
			want := tc.edit(t, dir)
			err := start(dir)
			if !errors.Is(err, localhub.ErrDirUnsafe) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Start: %v; want ErrDirUnsafe naming %s", err, want)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// chown gives path to uid 65534 (nobody).
func chown(t *testing.T, path string) {
	t.Helper()
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}
