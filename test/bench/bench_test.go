package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestQuickRun runs the whole harness in quick mode (seconds, tiny counts,
// all four devices) so that it never rots. It asserts only that every reply
// was received and echoed its request, never a timing.
func TestQuickRun(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "test", "conformance", "node_modules", "azure-iot-device-mqtt")); err != nil {
		t.Fatalf("device (d) needs test/conformance/node_modules: scripts/test.sh runs `npm ci --prefix test/conformance` first (%v)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--quick", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("go run ./test/bench --quick: exit %d, want 0\n%s", code, stderr.String())
	}
	report, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## (a) ", "## (b) ", "## (c) ", "## (d) ", "## Targets of issue 8", "## Raw os/exec"} {
		if !bytes.Contains(report, []byte(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
	if bytes.Contains(report, []byte("## Failures")) {
		t.Errorf("report lists failures:\n%s", report)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", s.p50, 50 * time.Millisecond},
		{"p90", s.p90, 90 * time.Millisecond},
		{"p99", s.p99, 99 * time.Millisecond},
		{"max", s.max, 100 * time.Millisecond},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if one := summarize([]time.Duration{time.Second}); one.p50 != time.Second || one.p99 != time.Second {
		t.Errorf("one sample: %+v", one)
	}
}

func TestPayloadMaker(t *testing.T) {
	var ids atomic.Uint64
	for _, size := range []int{100, 8 << 10, 100 << 10} {
		m, err := newPayloadMaker(&ids, size)
		if err != nil {
			t.Fatal(err)
		}
		a, b := m.next(nil), m.next(nil)
		if len(a) != size || len(b) != size {
			t.Errorf("size %d: got %d and %d bytes", size, len(a), len(b))
		}
		if idOf(a) == idOf(b) {
			t.Errorf("size %d: two payloads share id %s", size, idOf(a))
		}
		if !sameJSON(a, a) || sameJSON(a, b) {
			t.Errorf("size %d: sameJSON does not tell payloads apart", size)
		}
	}
	if _, err := newPayloadMaker(&ids, 10); err == nil {
		t.Error("a payload below the overhead: got nil error")
	}
}

func TestSameJSON(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want string
		same      bool
	}{
		{"bytes", `{"id":"1","pad":"x"}`, `{"id":"1","pad":"x"}`, true},
		{"re-encoded", `{ "pad": "x", "id": "1" }`, `{"id":"1","pad":"x"}`, true},
		{"other id", `{"id":"2","pad":"x"}`, `{"id":"1","pad":"x"}`, false},
		{"truncated", `{"id":"1","pad":"`, `{"id":"1","pad":"x"}`, false},
		{"null", `null`, `{"id":"1","pad":"x"}`, false},
	} {
		if got := sameJSON([]byte(c.got), []byte(c.want)); got != c.same {
			t.Errorf("%s: sameJSON = %v, want %v", c.name, got, c.same)
		}
	}
}

func TestParseResult(t *testing.T) {
	for _, c := range []struct {
		name, body, payload string
		status              int
		fails               bool
	}{
		{"hub shape", `{"status":200,"payload":{"id":"1"}}`, `{"id":"1"}`, 200, false},
		{"null", `{"status":500,"payload":null}`, `null`, 500, false},
		{"other order", `{"payload":[1],"status":201}`, `[1]`, 201, false},
		{"not JSON", `<html>`, "", 0, true},
	} {
		st, p, err := parseResult([]byte(c.body))
		if (err != nil) != c.fails || st != c.status || string(p) != c.payload {
			t.Errorf("%s: parseResult = %d, %s, %v; want %d, %s, fails %v", c.name, st, p, err, c.status, c.payload, c.fails)
		}
	}
}

func TestParseOptions(t *testing.T) {
	var stderr strings.Builder
	o, err := parseOptions([]string{"--quick"}, &stderr, "/r")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.inflights) == 0 || len(o.sizes) == 0 || o.maxCalls < 1 || o.duration <= 0 {
		t.Errorf("quick defaults incomplete: %+v", o)
	}
	full, err := parseOptions(nil, &stderr, "/r")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(full.paths) * len(full.inflights) * len(full.sizes); got != 18 {
		t.Errorf("full matrix has %d cells per device, want 18", got)
	}
	if _, err := parseOptions([]string{"--duration", "-1s"}, &stderr, "/r"); err == nil {
		t.Error("negative --duration: got nil error")
	}
}

func TestParseOptionsRestrictsMatrix(t *testing.T) {
	var stderr strings.Builder
	o, err := parseOptions([]string{"--paths", "mqtt", "--inflight", "128,16", "--sizes", "8192"}, &stderr, "/r")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.paths, []string{pathMQTT}) || !slices.Equal(o.inflights, []int{16, 128}) || !slices.Equal(o.sizes, []int{8 << 10}) {
		t.Errorf("restricted matrix = %v %v %v, want [MQTT] [16 128] [8192]", o.paths, o.inflights, o.sizes)
	}
	for _, bad := range [][]string{{"--sizes", "8000"}, {"--inflight", "2"}, {"--paths", "amqp"}, {"--sizes", "x"}} {
		if _, err := parseOptions(bad, &stderr, "/r"); !errors.Is(err, errUsage) {
			t.Errorf("%v: error %v, want a usage error", bad, err)
		}
	}
}
