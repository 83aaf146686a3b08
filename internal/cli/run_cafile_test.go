package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/methodd/methodd/engine"
)

// TestRunCAFile: `run --ca-file FILE` adds FILE's certificates to the roots
// the device session trusts, as invoke's --ca-file does, besides
// connection.ca_file; a bad file is a usage error naming the flag.
func TestRunCAFile(t *testing.T) {
	h := startTestHub(t, "dev1")
	csFile := filepath.Join(t.TempDir(), "cs")
	if err := os.WriteFile(csFile, []byte(h.info.Devices["dev1"]), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := (&runCmd{env: Env{Stderr: &strings.Builder{}}}).parse([]string{"--connection-string-file", csFile, "--ca-file", h.info.CAFile})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	id, err := resolveIdentity(context.Background(), f.id, engine.Connection{}, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(h.info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if id.roots == nil {
		t.Fatal("no roots: --ca-file ignored")
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: id.roots}); err != nil {
		t.Errorf("the hub's CA from --ca-file is not trusted: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.id.caFile = bad
	if _, err := resolveIdentity(context.Background(), f.id, engine.Connection{}, func(string) string { return "" }, nil); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("got %v, want a --ca-file error", err)
	}
}
