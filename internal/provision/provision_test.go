package provision

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/iothub"
)

const (
	groupKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	devKey   = "ZGV2aWNlLWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU="
)

// tlsCertStub stands for an X.509 device certificate: only its identity
// matters here.
var tlsCertStub tls.Certificate

// fakeDPS is a provision func recording its calls.
type fakeDPS struct {
	calls []device.ProvisionConfig
	err   error
	hub   string
}

func (f *fakeDPS) provision(_ context.Context, c device.ProvisionConfig) (device.Assignment, error) {
	f.calls = append(f.calls, c)
	if f.err != nil {
		return device.Assignment{}, f.err
	}
	return device.Assignment{AssignedHub: f.hub, DeviceID: c.RegistrationID, Substatus: "initialAssignment"}, nil
}

// testConfig is a group-enrollment Config in a temporary directory, with
// its key file written, logging to log.
func testConfig(t *testing.T, dps *fakeDPS, log *bytes.Buffer) Config {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "group.key")
	if err := os.WriteFile(keyFile, []byte(" "+groupKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		Endpoint: "localhost:1234", IDScope: "0ne00000001", RegistrationID: "gw-01", GroupKeyFile: keyFile,
		GatewayHostName: "localhost:8883", CachePath: filepath.Join(dir, "state", "sub", "provisioning.json"),
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }, provision: dps.provision,
	}
}

func newProvisioner(t *testing.T, c Config) *Provisioner {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRegisterCachesAndCachedReuses: Register derives the device key from
// the group key, calls DPS once, caches the assignment (0600 in a 0700
// directory, no key) and returns the connection string with the gateway;
// Cached then returns the same string without calling DPS.
func TestRegisterCachesAndCachedReuses(t *testing.T) {
	dps := &fakeDPS{hub: "hub.example.net"}
	var log bytes.Buffer
	c := testConfig(t, dps, &log)
	p := newProvisioner(t, c)
	if _, ok, err := p.Cached(); ok || err != nil {
		t.Fatalf("Cached before any registration: ok %v, err %v; want false, nil", ok, err)
	}
	cs, err := p.Register(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	derived, _ := iothub.DeriveDeviceKey(groupKey, "gw-01")
	want := iothub.ConnectionString{HostName: "hub.example.net", DeviceID: "gw-01", SharedAccessKey: derived, GatewayHostName: "localhost:8883"}
	if cs != want {
		t.Errorf("Register: got %+v, want %+v", cs, want)
	}
	if len(dps.calls) != 1 || dps.calls[0].SymmetricKey != derived || dps.calls[0].IDScope != "0ne00000001" || dps.calls[0].Endpoint != "localhost:1234" {
		t.Fatalf("DPS calls: got %+v, want one with the derived key", dps.calls)
	}
	st, err := os.Stat(c.CachePath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache mode: got %v, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(c.CachePath)); dst.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode: got %v, want 0700", dst.Mode().Perm())
	}
	b, _ := os.ReadFile(c.CachePath)
	for _, secret := range []string{groupKey, derived} {
		if bytes.Contains(b, []byte(secret)) || strings.Contains(log.String(), secret) {
			t.Errorf("a key is in the cache or the log:\n%s\n%s", b, log.String())
		}
	}
	for _, field := range []string{`"assignedHub": "hub.example.net"`, `"deviceId": "gw-01"`, `"idScope": "0ne00000001"`,
		`"registrationId": "gw-01"`, `"endpoint": "localhost:1234"`, `"provisionedAt": "2025-01-02T03:04:05Z"`} {
		if !bytes.Contains(b, []byte(field)) {
			t.Errorf("cache lacks %s:\n%s", field, b)
		}
	}

	got, ok, err := newProvisioner(t, c).Cached()
	if err != nil || !ok || got != want {
		t.Errorf("Cached after Register: got %+v, %v, %v; want %+v, true, nil", got, ok, err, want)
	}
	if len(dps.calls) != 1 {
		t.Errorf("Cached called DPS")
	}
}

// TestCachedIgnores: a corrupt cache, or one for another id scope,
// registration id or endpoint, is no assignment, never an error.
func TestCachedIgnores(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"corrupt", `{"assignedHub": `},
		{"empty object", `{}`},
		{"other scope", `{"assignedHub":"h","deviceId":"gw-01","idScope":"0ne2","registrationId":"gw-01","endpoint":"localhost:1234"}`},
		{"other registration", `{"assignedHub":"h","deviceId":"gw-02","idScope":"0ne00000001","registrationId":"gw-02","endpoint":"localhost:1234"}`},
		{"other endpoint", `{"assignedHub":"h","deviceId":"gw-01","idScope":"0ne00000001","registrationId":"gw-01","endpoint":"dps.example.com"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			c := testConfig(t, &fakeDPS{}, &log)
			if err := os.MkdirAll(filepath.Dir(c.CachePath), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.CachePath, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if cs, ok, err := newProvisioner(t, c).Cached(); ok || err != nil {
				t.Errorf("got %+v, %v, %v; want no assignment and no error", cs, ok, err)
			}
			if log.Len() == 0 {
				t.Error("an ignored cache was not logged")
			}
		})
	}
}

// TestKeysAndErrors: individual keys are used as they are, X.509 gives
// x509=true without a key, a bad key file and a DPS failure are errors
// that name no key, and a failed registration writes no cache.
func TestKeysAndErrors(t *testing.T) {
	dps := &fakeDPS{hub: "h"}
	var log bytes.Buffer
	c := testConfig(t, dps, &log)
	indiv := filepath.Join(t.TempDir(), "dev.key")
	if err := os.WriteFile(indiv, []byte(devKey), 0o600); err != nil {
		t.Fatal(err)
	}
	ci := c
	ci.GroupKeyFile, ci.SymmetricKeyFile = "", indiv
	if cs, err := newProvisioner(t, ci).Register(context.Background()); err != nil || cs.SharedAccessKey != devKey {
		t.Errorf("individual enrollment: got %+v, %v; want the file's key", cs, err)
	}
	cx := c
	cx.GroupKeyFile, cx.ClientCert = "", &tlsCertStub
	if cs, err := newProvisioner(t, cx).Register(context.Background()); err != nil || !cs.X509 || cs.SharedAccessKey != "" {
		t.Errorf("X.509: got %+v, %v; want x509=true and no key", cs, err)
	}
	if dps.calls[len(dps.calls)-1].ClientCert != &tlsCertStub {
		t.Error("X.509: the certificate was not passed to DPS")
	}

	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("not base64 "+groupKey[:10]), 0o600); err != nil {
		t.Fatal(err)
	}
	cb := c
	cb.GroupKeyFile = bad
	if _, err := newProvisioner(t, cb).Register(context.Background()); err == nil || strings.Contains(err.Error(), groupKey[:10]) {
		t.Errorf("bad key file: got %v, want an error without the content", err)
	}
	cm := c // the cache of the registrations above is there
	cm.GroupKeyFile = filepath.Join(t.TempDir(), "missing")
	if _, ok, err := newProvisioner(t, cm).Cached(); err == nil || ok {
		t.Errorf("Cached with a cache and a missing key file: got %v, %v; want an error", ok, err)
	}
	cm.CachePath = filepath.Join(t.TempDir(), "none.json")
	if _, ok, err := newProvisioner(t, cm).Cached(); err == nil || ok {
		t.Errorf("Cached with a missing key file and no cache: got %v, %v; want an error (found at start-up)", ok, err)
	}

	refused := &device.ProvisionError{Status: 401, ErrorCode: 401002, Message: "Unauthorized"}
	cf := testConfig(t, &fakeDPS{err: refused}, &log)
	_, err := newProvisioner(t, cf).Register(context.Background())
	var pe *device.ProvisionError
	if !errors.As(err, &pe) || pe.Status != 401 {
		t.Errorf("DPS refusal: got %v, want the ProvisionError", err)
	}
	if _, err := os.Stat(cf.CachePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed registration left a cache: %v", err)
	}
}

// TestNewValidates: New refuses what cannot register.
func TestNewValidates(t *testing.T) {
	var log bytes.Buffer
	ok := testConfig(t, &fakeDPS{}, &log)
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"no scope", func(c *Config) { c.IDScope = "" }},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }},
		{"no cache", func(c *Config) { c.CachePath = "" }},
		{"uppercase registration id", func(c *Config) { c.RegistrationID = "GW" }},
		{"dotted registration id", func(c *Config) { c.RegistrationID = "gw.example.com" }},
		{"no key", func(c *Config) { c.GroupKeyFile = "" }},
		{"two keys", func(c *Config) { c.SymmetricKeyFile = "k" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.modify(&c)
			if _, err := New(c); err == nil {
				t.Error("accepted")
			}
		})
	}
}
