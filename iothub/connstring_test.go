package iothub

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDeviceConnectionString(t *testing.T) {
	tests := []struct {
		name, in string
		want     ConnectionString
	}{
		{"device key", "HostName=h.net;DeviceId=d1;SharedAccessKey=" + tvKey,
			ConnectionString{HostName: "h.net", DeviceID: "d1", SharedAccessKey: tvKey}},
		{"module + gateway with port", "HostName=localhost;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + tvKey + ";GatewayHostName=localhost:8883",
			ConnectionString{HostName: "localhost", DeviceID: "d1", ModuleID: "m1", SharedAccessKey: tvKey, GatewayHostName: "localhost:8883"}},
		{"x509", "HostName=h.net;DeviceId=d1;x509=true", ConnectionString{HostName: "h.net", DeviceID: "d1", X509: true}},
		{"fixed SAS keeps its = and &", "HostName=h.net;DeviceId=device-1;SharedAccessSignature=SharedAccessSignature sr=h.net%2Fdevices%2Fdevice-1&sig=abc%3D&se=1767225600",
			ConnectionString{HostName: "h.net", DeviceID: "device-1", SharedAccessSignature: "SharedAccessSignature sr=h.net%2Fdevices%2Fdevice-1&sig=abc%3D&se=1767225600"}},
		{"last duplicate wins, trailing ;", "HostName=a;HostName=h.net;DeviceId=d1;SharedAccessKey=" + tvKey + ";",
			ConnectionString{HostName: "h.net", DeviceID: "d1", SharedAccessKey: tvKey}},
		{"UseProvisioning ignored", "HostName=h.net;DeviceId=d1;x509=true;UseProvisioning=true", ConnectionString{HostName: "h.net", DeviceID: "d1", X509: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDeviceConnectionString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseDeviceConnectionString(got.String())
			if err != nil || again != got {
				t.Errorf("String() round trip: %+v, %v", again, err)
			}
		})
	}
}

// TestConnectionStringErrorsNameKeyNotValue: every error names what is wrong
// and never echoes a value (values may be secrets).
func TestConnectionStringErrorsNameKeyNotValue(t *testing.T) {
	const secret = "c2VjcmV0c2VjcmV0c2VjcmV0"
	tests := []struct{ name, in, wantSub string }{
		{"unknown key", "HostName=h;DeviceId=d;SharedAccesKey=" + secret, `unknown key "SharedAccesKey"`},
		{"bad base64", "HostName=h;DeviceId=d;SharedAccessKey=" + secret + "!!", "SharedAccessKey is not valid base64"},
		{"no equals", "HostName=h;DeviceId=d;" + secret, "pair 3 is not Key=Value"},
		{"empty value", "HostName=;DeviceId=d;SharedAccessKey=" + secret, "HostName has an empty value"},
		{"missing host", "DeviceId=d;SharedAccessKey=" + secret, "missing HostName"},
		{"missing device", "HostName=h;SharedAccessKey=" + secret, "missing DeviceId"},
		{"two credentials", "HostName=h;DeviceId=d;SharedAccessKey=" + secret + ";x509=true", "exactly one of"},
		{"no credential", "HostName=h;DeviceId=d", "exactly one of"},
		{"x509 false", "HostName=h;DeviceId=d;x509=false", `x509 must be "true"`},
		{"bad fixed sas", "HostName=h;DeviceId=d;SharedAccessSignature=" + secret, "SharedAccessSignature"},
		{"empty", "  ", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDeviceConnectionString(tt.in)
			if !errors.Is(err, ErrConnectionString) {
				t.Fatalf("got %v, want ErrConnectionString", err)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("error %q lacks %q", err, tt.wantSub)
			}
			if strings.Contains(err.Error(), secret[:12]) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

func TestParseServiceConnectionString(t *testing.T) {
	cs := "HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=" + tvKey
	got, err := ParseServiceConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	if got.HostName != "localhost:8443" || got.SharedAccessKeyName != "iothubowner" || got.Resource() != "localhost:8443" {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{
		"HostName=h;SharedAccessKey=" + tvKey,
		"HostName=h;SharedAccessKeyName=p",
		"HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + tvKey,
		"SharedAccessKeyName=p;SharedAccessKey=" + tvKey,
	} {
		if _, err := ParseServiceConnectionString(bad); !errors.Is(err, ErrConnectionString) {
			t.Errorf("ParseServiceConnectionString(%q) = %v, want error", bad, err)
		}
	}
}

func TestIdentityHelpers(t *testing.T) {
	c := ConnectionString{HostName: "h", DeviceID: "d", ModuleID: "m", GatewayHostName: "gw:1"}
	if c.ClientID() != "d/m" || c.Resource() != "h/devices/d/modules/m" || c.DialHost() != "gw:1" {
		t.Errorf("got %q %q %q", c.ClientID(), c.Resource(), c.DialHost())
	}
	c = ConnectionString{HostName: "h", DeviceID: "d"}
	if c.ClientID() != "d" || c.Resource() != "h/devices/d" || c.DialHost() != "h" {
		t.Errorf("got %q %q %q", c.ClientID(), c.Resource(), c.DialHost())
	}
}
