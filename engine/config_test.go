package engine

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestConnectionTwin: connection.twin defaults to true and takes only a
// YAML boolean; anything else is a diagnostic at the value.
func TestConnectionTwin(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want bool
		diag string // the whole diagnostic, "" for a valid file
	}{
		{"no connection section", "version: 1\n", true, ""},
		{"connection without twin", "version: 1\nconnection: {transport: mqtt}\n", true, ""},
		{"true", "version: 1\nconnection:\n  twin: true\n", true, ""},
		{"false", "version: 1\nconnection:\n  twin: false\n", false, ""},
		{"integer", "version: 1\nconnection:\n  twin: 1\n", false, `h.yaml:3:9: connection.twin: must be true or false, got "1"`},
		{"string", "version: 1\nconnection:\n  twin: \"false\"\n", false, `h.yaml:3:9: connection.twin: must be true or false, got "false"`},
		{"null", "version: 1\nconnection:\n  twin:\n", false, `h.yaml:3:8: connection.twin: must be true or false, got empty (null)`},
		{"list", "version: 1\nconnection:\n  twin: [true]\n", false, `h.yaml:3:9: connection.twin: must be true or false, got a list`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("h.yaml", []byte(tc.yaml), testOptions())
			if tc.diag != "" {
				var diags Diagnostics
				if !errors.As(err, &diags) || diags.Error() != tc.diag {
					t.Fatalf("got %v, want the diagnostic %s", err, tc.diag)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := s.Connection().Twin; got != tc.want {
				t.Errorf("Connection().Twin: got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestConnectionProvisioning: connection.provisioning and
// connection.gateway_host_name decode into Connection, with defaults,
// relative paths against the file's directory, and one diagnostic, at its
// position, per problem.
func TestConnectionProvisioning(t *testing.T) {
	const head = "version: 1\nconnection:\n"
	tests := []struct {
		name string
		yaml string // appended to head
		want *Provisioning
		gw   string
		diag string // the whole diagnostics text, "" for a valid file
	}{
		{name: "none", yaml: "  twin: true\n"},
		{name: "gateway only", yaml: "  gateway_host_name: localhost:8883\n", gw: "localhost:8883"},
		{name: "gateway without port", yaml: "  gateway_host_name: edge.local\n", gw: "edge.local"},
		{name: "group key, defaults", yaml: "  provisioning: {id_scope: 0ne00000001, group_key_file: group.key}\n",
			want: &Provisioning{IDScope: "0ne00000001", Endpoint: DefaultProvisioningEndpoint, GroupKeyFile: "/etc/m/group.key"}},
		{name: "every key", yaml: "  gateway_host_name: localhost:1234\n  provisioning:\n    id_scope: 0ne1\n    registration_id: gw-01\n" +
			"    endpoint: dps.example.com:8883\n    symmetric_key_file: /k/dev.key\n    cache: state/p.json\n",
			gw:   "localhost:1234",
			want: &Provisioning{IDScope: "0ne1", RegistrationID: "gw-01", Endpoint: "dps.example.com:8883", SymmetricKeyFile: "/k/dev.key", Cache: "/etc/m/state/p.json"}},
		{name: "x509", yaml: "  provisioning: {id_scope: s, cert_file: d.pem, key_file: d.key}\n",
			want: &Provisioning{IDScope: "s", Endpoint: DefaultProvisioningEndpoint, CertFile: "/etc/m/d.pem", KeyFile: "/etc/m/d.key"}},
		{name: "with connection_string_file", yaml: "  connection_string_file: cs\n  provisioning: {id_scope: s, group_key_file: g}\n",
			diag: "/etc/m/h.yaml:3:27: connection.connection_string_file: excludes connection.provisioning: the identity comes from one or the other"},
		{name: "with connection cert", yaml: "  cert_file: c\n  key_file: k\n  provisioning: {id_scope: s, group_key_file: g}\n",
			diag: "/etc/m/h.yaml:5:17: connection.provisioning: excludes connection.cert_file and key_file: with provisioning, give them as provisioning.cert_file and key_file"},
		{name: "no id_scope", yaml: "  provisioning: {group_key_file: g}\n",
			diag: "/etc/m/h.yaml:3:17: connection.provisioning.id_scope: required: the id scope of the DPS instance (Azure portal: the DPS overview page)"},
		{name: "empty id_scope", yaml: "  provisioning: {id_scope: '', group_key_file: g}\n",
			diag: `/etc/m/h.yaml:3:28: connection.provisioning.id_scope: must be the DPS instance's id scope (such as 0ne00000001), got ""`},
		{name: "no key", yaml: "  provisioning: {id_scope: s}\n",
			diag: "/etc/m/h.yaml:3:17: connection.provisioning: needs one of symmetric_key_file, group_key_file, or cert_file and key_file"},
		{name: "two keys", yaml: "  provisioning: {id_scope: s, group_key_file: g, symmetric_key_file: k}\n",
			diag: "/etc/m/h.yaml:3:17: connection.provisioning: give only one of symmetric_key_file, group_key_file, or cert_file and key_file"},
		{name: "key and cert", yaml: "  provisioning: {id_scope: s, group_key_file: g, cert_file: c, key_file: k}\n",
			diag: "/etc/m/h.yaml:3:17: connection.provisioning: give only one of symmetric_key_file, group_key_file, or cert_file and key_file"},
		{name: "cert without key", yaml: "  provisioning: {id_scope: s, cert_file: c}\n",
			diag: "/etc/m/h.yaml:3:17: connection.provisioning: cert_file and key_file go together (X.509 attestation needs both)"},
		{name: "uppercase registration id", yaml: "  provisioning: {id_scope: s, group_key_file: g, registration_id: GW-1}\n",
			diag: `/etc/m/h.yaml:3:67: connection.provisioning.registration_id: must be 1 to 128 lowercase letters, digits and hyphens, got "GW-1"`},
		{name: "long registration id", yaml: "  provisioning: {id_scope: s, group_key_file: g, registration_id: " + strings.Repeat("a", 129) + "}\n",
			diag: `/etc/m/h.yaml:3:67: connection.provisioning.registration_id: must be 1 to 128 lowercase letters, digits and hyphens, got "` + strings.Repeat("a", 129) + `"`},
		{name: "endpoint with scheme", yaml: "  provisioning: {id_scope: s, group_key_file: g, endpoint: 'mqtts://dps'}\n",
			diag: `/etc/m/h.yaml:3:60: connection.provisioning.endpoint: must be a host name with an optional port (host or host:port), got "mqtts://dps"`},
		{name: "bad gateway port", yaml: "  gateway_host_name: localhost:99999\n",
			diag: `/etc/m/h.yaml:3:22: connection.gateway_host_name: must be a host name with an optional port (host or host:port), got "localhost:99999"`},
		{name: "empty cache", yaml: "  provisioning: {id_scope: s, group_key_file: g, cache: ''}\n",
			diag: `/etc/m/h.yaml:3:57: connection.provisioning.cache: must be a file path`},
		{name: "unknown key", yaml: "  provisioning: {id_scope: s, group_key: g}\n",
			diag: "/etc/m/h.yaml:3:17: connection.provisioning: needs one of symmetric_key_file, group_key_file, or cert_file and key_file\n" +
				"/etc/m/h.yaml:3:31: unknown key \"group_key\" in connection.provisioning (valid keys: id_scope, registration_id, endpoint, symmetric_key_file, group_key_file, cert_file, key_file, cache)"},
		{name: "not a mapping", yaml: "  provisioning: yes\n",
			diag: `/etc/m/h.yaml:3:17: connection.provisioning: must be a mapping with id_scope and a key or certificate, got a scalar`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("/etc/m/h.yaml", []byte(head+tc.yaml), testOptions())
			if tc.diag != "" {
				var diags Diagnostics
				if !errors.As(err, &diags) || diags.Error() != tc.diag {
					t.Fatalf("got %v, want the diagnostics\n%s", err, tc.diag)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c := s.Connection()
			if c.GatewayHostName != tc.gw {
				t.Errorf("GatewayHostName: got %q, want %q", c.GatewayHostName, tc.gw)
			}
			if !reflect.DeepEqual(c.Provisioning, tc.want) {
				t.Errorf("Provisioning: got %+v, want %+v", c.Provisioning, tc.want)
			}
		})
	}
}

// TestSplitHostPort: the engine's own host[:port] split (it does not
// import net).
func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in, host, port string
		hasPort        bool
	}{
		{"gw", "gw", "", false},
		{"gw:8883", "gw", "8883", true},
		{"gw:", "gw", "", true},
		{"[::1]:8883", "::1", "8883", true},
		{"[::1]", "::1", "", false},
		{"::1", "::1", "", false},
		{"[::1]x", "", "", false},
	}
	for _, tc := range tests {
		h, p, ok := splitHostPort(tc.in)
		if h != tc.host || p != tc.port || ok != tc.hasPort {
			t.Errorf("splitHostPort(%q): got %q, %q, %v; want %q, %q, %v", tc.in, h, p, ok, tc.host, tc.port, tc.hasPort)
		}
	}
}
