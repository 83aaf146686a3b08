package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// runQuery runs `methodd query args...` in-process.
func runQuery(t testing.TB, getenv func(string) string, args ...string) invokeResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"query"}, args...),
		Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv})
	return invokeResult{code, out.String(), errb.String()}
}

// tagTwins sets tags on the twins of ids with `methodd twin update`.
func tagTwins(t testing.TB, h *testHub, tags string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if r := runTwin(t, h.env(), "", "update", "--local", "--hub-dir", h.dir, id, "--tags", tags); r.code != exitOK {
			t.Fatalf("twin update %s --tags %s: exit %d: %s", id, tags, r.code, r.stderr)
		}
	}
}

// queryLines decodes stdout: one compact JSON object per line.
func queryLines(t testing.TB, stdout string) []twinFields {
	t.Helper()
	var out []twinFields
	for line := range strings.SplitSeq(strings.TrimSuffix(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var c bytes.Buffer
		if err := json.Compact(&c, []byte(line)); err != nil || c.String() != line {
			t.Errorf("line %q is not one compact JSON value (%v)", line, err)
		}
		var f twinFields
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, f)
	}
	return out
}

// ids lists the twins' client ids, in order.
func idsOf(twins []twinFields) string {
	var s []string
	for _, tw := range twins {
		id := tw.DeviceID
		if tw.ModuleID != "" {
			id += "/" + tw.ModuleID
		}
		s = append(s, id)
	}
	return strings.Join(s, ",")
}

// TestQueryCommandOnLocalHub: `methodd query` prints one twin per line,
// whatever the page size; modules are their own source; no match prints
// nothing and exits 0.
func TestQueryCommandOnLocalHub(t *testing.T) {
	h := startTestHub(t, "q-a", "q-b", "q-c", "other", "q-a/mod1")
	tagTwins(t, h, `{"fleet":"q"}`, "q-a", "q-b", "q-c")
	tagTwins(t, h, `{"fleet":"p"}`, "other")
	const sql = "SELECT * FROM devices WHERE tags.fleet = 'q'"
	for _, size := range []string{"1", "2", "3", "1000", ""} {
		t.Run("page size "+size, func(t *testing.T) {
			args := []string{"--local", "--hub-dir", h.dir, sql}
			if size != "" {
				args = append([]string{"--page-size", size}, args...)
			}
			r := runQuery(t, h.env(), args...)
			if r.code != exitOK {
				t.Fatalf("exit %d, want 0\nstderr: %s", r.code, r.stderr)
			}
			twins := queryLines(t, r.stdout)
			if got := idsOf(twins); got != "q-a,q-b,q-c" {
				t.Errorf("devices %s, want q-a,q-b,q-c", got)
			}
			for _, tw := range twins {
				if tw.Tags["fleet"] != "q" || tw.ETag == "" {
					t.Errorf("twin %+v: want the full twin with tags.fleet q", tw)
				}
			}
		})
	}
	t.Run("flags after the query", func(t *testing.T) {
		r := runQuery(t, h.env(), "SELECT * FROM devices WHERE deviceId IN ['other', 'q-c']", "--local", "--hub-dir", h.dir)
		if got := idsOf(queryLines(t, r.stdout)); r.code != exitOK || got != "other,q-c" {
			t.Errorf("exit %d, devices %s; want 0 and other,q-c\nstderr: %s", r.code, got, r.stderr)
		}
	})
	t.Run("modules", func(t *testing.T) {
		r := runQuery(t, h.env(), "--local", "--hub-dir", h.dir, "SELECT * FROM devices.modules")
		if got := idsOf(queryLines(t, r.stdout)); r.code != exitOK || got != "q-a/mod1" {
			t.Errorf("exit %d, twins %s; want 0 and q-a/mod1\nstderr: %s", r.code, got, r.stderr)
		}
	})
	t.Run("no match", func(t *testing.T) {
		r := runQuery(t, h.env(), "--local", "--hub-dir", h.dir, "select * from devices where tags.fleet = 'none'")
		if r.code != exitOK || r.stdout != "" {
			t.Errorf("exit %d, stdout %q; want 0 and nothing\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestQueryCommandErrors: usage errors exit 2 before any request; a query
// the hub refuses exits 2 with the hub's message and its position; a hub
// that is missing or refuses the key exits 5.
func TestQueryCommandErrors(t *testing.T) {
	h := startTestHub(t, "dev1")
	cs, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	cs.SharedAccessKey = recognisableKey
	local := []string{"--local", "--hub-dir", h.dir}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"help", []string{"-h"}, 0, []string{"usage: methodd query", "Exit status"}},
		{"no query", local, 2, []string{"want one query", "got 0"}},
		{"two queries", append(local, "SELECT * FROM devices", "x"), 2, []string{"got 2"}},
		{"empty query", append(local, ""), 2, []string{"want one query"}},
		{"page size 0", append(local, "--page-size", "0", "SELECT * FROM devices"), 2, []string{"--page-size 0"}},
		{"page size 1001", append(local, "--page-size", "1001", "SELECT * FROM devices"), 2, []string{"--page-size 1001"}},
		{"local and cs", []string{"--local", "--connection-string", cs.String(), "SELECT * FROM devices"}, 2, []string{"exclude"}},
		{"syntax error", append(local, "SELECT * FROM devices WHERE tags.a = "), 2, []string{"400004", "position"}},
		{"unknown source", append(local, "SELECT * FROM nowhere"), 2, []string{"400004", "position"}},
		{"no local hub", []string{"--local", "--hub-dir", t.TempDir(), "SELECT * FROM devices"}, 5, []string{"no local hub"}},
		{"wrong key", []string{"--connection-string", cs.String(), "--ca-file", h.info.CAFile, "SELECT * FROM devices"}, 5, []string{"401002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runQuery(t, h.env(), tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q lacks %q", r.stderr, s)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if strings.Contains(r.stderr, recognisableKey) {
				t.Error("stderr holds the key")
			}
		})
	}
}

// TestQueryExitCodes maps Client.Query's errors.
func TestQueryExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, exitOK},
		{"bad query", fmt.Errorf("query: %w", iothub.NewError(iothub.CodeArgumentInvalid, "Syntax error at position 3: x")), exitUsage},
		{"refused input", fmt.Errorf("query: %w", invoke.ErrQuery), exitUsage},
		{"unauthorized", iothub.NewError(iothub.CodeUnauthorized, "x"), exitHubError},
		{"throttled", iothub.NewError(iothub.CodeThrottled, "x"), exitHubError},
		{"malformed", fmt.Errorf("query: %w", invoke.ErrMalformedQueryPage), exitHubError},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, exitHubError},
		{"deadline", context.DeadlineExceeded, exitHubError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(queryExit(tt.err), &bytes.Buffer{}); got != tt.want {
				t.Errorf("exit %d, want %d", got, tt.want)
			}
		})
	}
}

// TestQueryWriteFailureExits1: a closed stdout stops the query with exit 1.
func TestQueryWriteFailureExits1(t *testing.T) {
	h := startTestHub(t, "w1", "w2")
	var errb bytes.Buffer
	code := Run(context.Background(), []string{"query", "--local", "--hub-dir", h.dir, "--page-size", "1", "SELECT * FROM devices"},
		Env{Stdin: strings.NewReader(""), Stdout: failingWriter{}, Stderr: &errb, Getenv: h.env()})
	if code != exitFailure || !strings.Contains(errb.String(), "write the results") {
		t.Errorf("exit %d, stderr %q; want 1 and the write error", code, errb.String())
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("closed pipe") }
