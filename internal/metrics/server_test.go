package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/metrics"
)

// TestMetricsServerLifecycle: /metrics answers the text format with the
// metrics registered and nothing else is served; a second server on the
// same address fails to start; after Shutdown nothing answers.
func TestMetricsServerLifecycle(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	e, err := metrics.Start("127.0.0.1:0", "v1", log)
	if err != nil {
		t.Fatal(err)
	}
	e.CallDone("a-method-the-caller-made-up", false, 404, time.Millisecond)
	e.CallDone("hello", true, 1000, time.Millisecond)
	base := "http://" + e.Addr().String()

	tests := []struct {
		path   string
		status int
		body   []string
	}{
		{"/metrics", 200, []string{
			`methodd_calls_total{method="(unknown)",status="404"} 1`,
			`methodd_calls_total{method="hello",status="other"} 1`,
			`methodd_build_info{goversion="`,
		}},
		{"/", 404, nil},
		{"/debug/pprof/", 404, nil},
	}
	for _, tc := range tests {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: got %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		for _, want := range tc.body {
			if !strings.Contains(string(b), want) {
				t.Errorf("GET %s: body lacks %q", tc.path, want)
			}
		}
		if strings.Contains(string(b), "a-method-the-caller-made-up") {
			t.Errorf("GET %s: an unknown method's name became a label value", tc.path)
		}
	}

	if again, err := metrics.Start(e.Addr().String(), "v1", log); err == nil {
		_ = again.Shutdown(context.Background())
		t.Errorf("a second server on %s started; want a listen error", e.Addr())
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if resp, err := http.Get(base + "/metrics"); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Shutdown: got %s, want a connection error", resp.Status)
	}
}
