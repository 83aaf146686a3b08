// Package testkit holds test helpers that several packages' tests share.
// It is imported only by tests and uses the standard library only.
package testkit

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a
// sink for a logger's or a child process's output that a test reads while
// it is written.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ConfigMap lays out dir the way kubelet's AtomicWriter lays out a
// ConfigMap volume: it publishes first as a timestamped directory behind
// the ..data symlink, links dir/handlers.yaml to ..data/handlers.yaml, and
// returns the function that publishes a new version by the same atomic
// symlink swap (removing the old version's directory).
func ConfigMap(t testing.TB, dir, first string) (publish func(content string)) {
	t.Helper()
	n := 0
	publish = func(content string) {
		t.Helper()
		n++
		ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", n, n)
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "handlers.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(first)
	if err := os.Symlink(filepath.Join("..data", "handlers.yaml"), filepath.Join(dir, "handlers.yaml")); err != nil {
		t.Fatal(err)
	}
	return publish
}

// CertPool is a pool holding the PEM certificates of file (a local hub's
// CA, say); it fails t when the file holds none.
func CertPool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no PEM certificate in %s", file)
	}
	return pool
}
