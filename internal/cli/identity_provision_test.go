package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/iothub"
)

// TestProvisioningDefaults: the cache defaults to $STATE_DIRECTORY (its
// first entry), else /var/lib/methodd; the engine's default endpoint is
// iothub's.
func TestProvisioningDefaults(t *testing.T) {
	tests := []struct{ env, want string }{
		{"", "/var/lib/methodd/provisioning.json"},
		{"/var/lib/methodd", "/var/lib/methodd/provisioning.json"},
		{"/a:/b", "/a/provisioning.json"},
	}
	for _, tc := range tests {
		if got := defaultProvisioningCache(func(string) string { return tc.env }); got != tc.want {
			t.Errorf("STATE_DIRECTORY=%q: got %s, want %s", tc.env, got, tc.want)
		}
	}
	if engine.DefaultProvisioningEndpoint != iothub.DPSGlobalEndpoint {
		t.Errorf("engine's default endpoint %q differs from iothub's %q", engine.DefaultProvisioningEndpoint, iothub.DPSGlobalEndpoint)
	}
	if got, err := registrationID("gw-1"); got != "gw-1" || err != nil {
		t.Errorf("registrationID(gw-1): got %q, %v", got, err)
	}
}

// TestGatewayHostNameAppliesToConnectionStrings: connection.gateway_host_name
// overrides the connection string's own.
func TestGatewayHostNameAppliesToConnectionStrings(t *testing.T) {
	dir := t.TempDir()
	csFile := filepath.Join(dir, "cs")
	if err := os.WriteFile(csFile, []byte("HostName=h.example.net;DeviceId=d;SharedAccessKey=AAECAwQ=;GatewayHostName=old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := engine.Connection{Transport: "mqtt", GatewayHostName: "localhost:1234"}
	id, err := resolveIdentity(context.Background(), identityFlags{csFile: csFile}, conn, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if id.cs.GatewayHostName != "localhost:1234" || id.cs.DialHost() != "localhost:1234" || id.reidentify != nil {
		t.Errorf("got gateway %q, dial %q; want localhost:1234 and a fixed identity", id.cs.GatewayHostName, id.cs.DialHost())
	}
}

// TestProvisionedIdentityAtStartUp: without a cache the identity is empty
// and reidentify set; a missing key file is a usage error that names the
// key, not its content; the source names scope and registration only.
func TestProvisionedIdentityAtStartUp(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "group.key")
	if err := os.WriteFile(key, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &engine.Provisioning{IDScope: "0ne1", RegistrationID: "gw-1", Endpoint: "localhost:1", GroupKeyFile: key,
		Cache: filepath.Join(dir, "p.json")}
	conn := engine.Connection{Transport: "mqtt", Provisioning: p}
	getenv := func(string) string { return "" }
	log := slog.New(slog.DiscardHandler)
	id, err := resolveIdentity(context.Background(), identityFlags{}, conn, getenv, log)
	if err != nil {
		t.Fatal(err)
	}
	if id.cs.DeviceID != "" || id.reidentify == nil || id.source != "provisioning (id scope 0ne1, registration gw-1)" {
		t.Errorf("got identity %q, reidentify %v, source %q", id.cs.DeviceID, id.reidentify != nil, id.source)
	}
	p.GroupKeyFile = filepath.Join(dir, "missing.key")
	_, err = resolveIdentity(context.Background(), identityFlags{}, conn, getenv, log)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing key file: got %v, want a usage error naming the file", err)
	}
}
