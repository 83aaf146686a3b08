package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// methoddSection is the daemon's part of the reported properties (design
// §5), as `methodd twin show` prints it.
type methoddSection struct {
	Version          string   `json:"version"`
	ConfigDigest     string   `json:"configDigest"`
	Methods          []string `json:"methods"`
	MethodsTruncated *bool    `json:"methodsTruncated"`
	LoadedAt         string   `json:"loadedAt"`
	StartedAt        string   `json:"startedAt"`
	LastReload       *struct {
		OK       bool     `json:"ok"`
		At       string   `json:"at"`
		Problems []string `json:"problems"`
	} `json:"lastReload"`
}

// TestRunReportsItsStateInTheTwin is the twin end to end: `methodd run
// --local` connects and reports; `methodd twin show` (another command,
// through the hub's REST API) shows the active config's digest and methods;
// an edit of the file changes them; a rejected edit keeps them and shows
// lastReload.ok false with the first problem's FILE:LINE:COL.
func TestRunReportsItsStateInTheTwin(t *testing.T) {
	dir := t.TempDir()
	hubDir := filepath.Join(dir, "hub")
	cfg := filepath.Join(dir, "handlers.yaml")
	v1 := "version: 1\nmethods:\n  hello:\n    reply:\n      payload: '\"hi\"'\n"
	writeConfig(t, cfg, v1)

	env := map[string]string{"HOME": dir, "XDG_STATE_HOME": dir}
	getenv := func(k string) string { return env[k] }
	stderr := &testkit.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"run", "--local", "--hub-dir", hubDir, "--device", "gw1", "--config", cfg},
			Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: stderr, Getenv: getenv})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("run exited %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop within 30 s")
		}
		if t.Failed() {
			t.Logf("run's stderr:\n%s", stderr.String())
		}
	})

	sec := waitSection(t, hubDir, getenv, "the first report", func(s methoddSection) bool { return s.ConfigDigest == digestOf(v1) })
	if !slices.Contains(sec.Methods, "hello") || sec.LastReload != nil || sec.MethodsTruncated != nil || sec.Version == "" ||
		!isStamp(sec.LoadedAt) || !isStamp(sec.StartedAt) {
		t.Fatalf("first report: %+v, want hello among the methods, no lastReload, a version and times", sec)
	}

	v2 := v1 + "  bye:\n    reply:\n      payload: '\"bye\"'\n"
	writeConfig(t, cfg, v2)
	sec = waitSection(t, hubDir, getenv, "the edit's report", func(s methoddSection) bool { return s.ConfigDigest == digestOf(v2) })
	if !slices.Contains(sec.Methods, "bye") || sec.LastReload == nil || !sec.LastReload.OK || len(sec.LastReload.Problems) != 0 {
		t.Fatalf("after the edit: %+v, want bye served and lastReload ok", sec)
	}

	writeConfig(t, cfg, v2+"  broken:\n    reply:\n      payload: '{'\n")
	sec = waitSection(t, hubDir, getenv, "the rejected edit's report", func(s methoddSection) bool {
		return s.LastReload != nil && !s.LastReload.OK
	})
	if sec.ConfigDigest != digestOf(v2) || slices.Contains(sec.Methods, "broken") {
		t.Fatalf("after the rejected edit: %+v, want the active config (%s) still reported", sec, digestOf(v2))
	}
	// The payload '{' of "broken" is line 11, column 17.
	want := cfg + ":11:17: methods.broken.reply.payload: "
	if len(sec.LastReload.Problems) == 0 || !strings.HasPrefix(sec.LastReload.Problems[0], want) {
		t.Fatalf("problems %q: want the first to start with %q", sec.LastReload.Problems, want)
	}
}

// writeConfig replaces the handlers file atomically, as an editor or a
// configuration tool does.
func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// digestOf is the configDigest the daemon reports for content.
func digestOf(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func isStamp(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// waitSection runs `methodd twin show --local` until the twin's methodd
// section satisfies cond (at most 30 s) and returns it. Before the hub is
// up or the first report is in, show fails or has no section: it is asked
// again.
func waitSection(t *testing.T, hubDir string, getenv func(string) string, what string, cond func(methoddSection) bool) methoddSection {
	t.Helper()
	var last methoddSection
	testkit.Eventually(t, 30*time.Second, what, func() bool {
		var out, errb strings.Builder
		if Run(context.Background(), []string{"twin", "show", "--local", "--hub-dir", hubDir, "gw1"},
			Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv}) != exitOK {
			return false
		}
		var doc struct {
			Properties struct {
				Reported struct {
					Methodd *methoddSection `json:"methodd"`
				} `json:"reported"`
			} `json:"properties"`
		}
		if err := json.Unmarshal([]byte(out.String()), &doc); err != nil {
			t.Fatalf("twin show printed %q: %v", out.String(), err)
		}
		if doc.Properties.Reported.Methodd == nil {
			return false
		}
		last = *doc.Properties.Reported.Methodd
		return cond(last)
	})
	return last
}
