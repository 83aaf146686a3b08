package device

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// records keeps every log record a session writes, for assertions on
// levels and attributes (never on wording). Safe for concurrent use.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r } // the session adds component only
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// matching returns the records at level whose attributes include every
// key of want (and, for a non-nil value, that value).
func (r *records) matching(level slog.Level, want map[string]any) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.recs {
		if rec.Level != level {
			continue
		}
		found := 0
		rec.Attrs(func(a slog.Attr) bool {
			if v, ok := want[a.Key]; ok && (v == nil || a.Value.Any() == v) {
				found++
			}
			return true
		})
		if found == len(want) {
			out = append(out, rec)
		}
	}
	return out
}

// attr is the value of key in rec, nil when absent.
func attr(rec slog.Record, key string) any {
	var v any
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.Any()
			return false
		}
		return true
	})
	return v
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
	logs := &records{}
	states := make(chan State, 100)
	cfg := Config{
		Identity: cs, RootCAs: x509.NewCertPool(), // trusts nothing: unknown authority
		BackoffMin: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond,
		Logger: slog.New(logs),
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
	// Every failed attempt is a record with its back-off; one of them at
	// Warn (the first, with its cause), the others below it.
	warned := logs.matching(slog.LevelWarn, map[string]any{logkey.RetryInMs: nil, logkey.Err: nil})
	if len(warned) != 1 {
		t.Fatalf("%d Warn records of failed attempts for one unchanged certificate error, want 1", len(warned))
	}
	var ua x509.UnknownAuthorityError
	if err, _ := attr(warned[0], logkey.Err).(error); !errors.As(err, &ua) || attr(warned[0], logkey.Cause) == nil {
		t.Errorf("the Warn record's error %v, cause %v: want the unknown authority and its cause", attr(warned[0], logkey.Err), attr(warned[0], logkey.Cause))
	}
	if quiet := logs.matching(slog.LevelDebug, map[string]any{logkey.RetryInMs: nil, logkey.Err: nil}); len(quiet) < 4 {
		t.Errorf("%d Debug records of the other failed attempts, want at least 4", len(quiet))
	}
}

// TestDuplicateIdentityDetected: two sessions with one identity kick each
// other off the hub; each reports the pattern as State.Duplicate and logs
// it with advice.
func TestDuplicateIdentityDetected(t *testing.T) {
	cs, pool := truthHub(t)
	logs := &records{}
	dup := make(chan struct{})
	var once sync.Once
	for range 2 {
		cfg := Config{
			Identity: cs, RootCAs: pool,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
			Logger: slog.New(logs),
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
		t.Fatal("no Duplicate state within 30s")
	}
	// The state is emitted right after its Warn record, which names the
	// identity and how many drops made the pattern.
	if w := logs.matching(slog.LevelWarn, map[string]any{logkey.Identity: cs.ClientID(), logkey.Drops: nil}); len(w) == 0 {
		t.Error("no Warn record naming the shared identity and its drops")
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
