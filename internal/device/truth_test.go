package device

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// truthHub starts a local hub with one device and returns its identity.
func truthHub(t *testing.T) (iothub.ConnectionString, *x509.CertPool) {
	t.Helper()
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: []string{"dev-01"},
	})
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	pem, err := os.ReadFile(h.Info().CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cs, err := iothub.ParseDeviceConnectionString(h.Info().Devices["dev-01"])
	if err != nil {
		t.Fatal(err)
	}
	return cs, pool
}

// TestCertificateErrorLoggedOncePerCause: a hub whose certificate is not
// trusted fails every attempt the same way; the failure is logged once at
// Warn (with its cause and the back-off), not once per attempt, while a
// Disconnected state is still reported per attempt.
func TestCertificateErrorLoggedOncePerCause(t *testing.T) {
	cs, _ := truthHub(t)
	var logs syncBuffer
	states := make(chan State, 100)
	cfg := Config{
		Identity: cs, RootCAs: x509.NewCertPool(), // trusts nothing: unknown authority
		BackoffMin: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		OnState: func(st State) {
			select {
			case states <- st:
			default:
			}
		},
	}
	stop := startSession(t, cfg, handlerFunc(func(context.Context, Request) Response { return Response{Status: 200} }))
	deadline := time.After(30 * time.Second)
	for n := 0; n < 5; {
		select {
		case st := <-states:
			if st.Kind == Disconnected {
				n++
			}
		case <-deadline:
			t.Fatalf("got %d failed attempts, want 5", n)
		}
	}
	stop()
	out := logs.String()
	if got := strings.Count(out, `msg="connect failed"`); got != 1 {
		t.Errorf("%d \"connect failed\" lines for one unchanged certificate error, want 1:\n%s", got, out)
	}
	if !strings.Contains(out, "unknown authority") || !strings.Contains(out, "retryIn=") {
		t.Errorf("the line must name the cause and the back-off:\n%s", out)
	}
}

// TestDuplicateIdentityDetected: two sessions with one identity kick each
// other off the hub; each reports the pattern as State.Duplicate and logs
// it with advice.
func TestDuplicateIdentityDetected(t *testing.T) {
	cs, pool := truthHub(t)
	var logs syncBuffer
	dup := make(chan struct{})
	var once sync.Once
	for range 2 {
		cfg := Config{
			Identity: cs, RootCAs: pool,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			OnState: func(st State) {
				if st.Duplicate {
					once.Do(func() { close(dup) })
				}
			},
		}
		startSession(t, cfg, handlerFunc(func(context.Context, Request) Response { return Response{Status: 200} }))
	}
	select {
	case <-dup:
	case <-time.After(30 * time.Second):
		t.Fatalf("no Duplicate state within 30s; logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "another client is probably connected as "+cs.ClientID()) {
		t.Errorf("no duplicate-identity warning in the logs:\n%s", logs.String())
	}
}

// TestDupTrackerNeedsQuickRepeatedDrops: only repeated drops right after
// connecting make the pattern.
func TestDupTrackerNeedsQuickRepeatedDrops(t *testing.T) {
	var d dupTracker
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		up, lost time.Duration
		holds    bool
	}{
		{0, 1 * time.Second, false},
		{2 * time.Second, 3 * time.Second, false},
		{4 * time.Second, 5 * time.Second, true},
		{6 * time.Second, 30 * time.Second, false}, // a long-lived connection ends it
	} {
		if holds, _ := d.lost(t0.Add(tc.up), t0.Add(tc.lost)); holds != tc.holds {
			t.Errorf("drop %d: holds %v, want %v", i, holds, tc.holds)
		}
	}
}
