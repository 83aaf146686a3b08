package iothub

import (
	"errors"
	"testing"
	"time"
)

const (
	tvKey   = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0x00..0x1f (§8)
	tvHost  = "myhub.azure-devices.net"
	nodeKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef" (§9)
)

var (
	tvExpiry   = time.Unix(1767225600, 0)
	nodeExpiry = time.Unix(2000000000, 0)
)

// TestSignVectors reproduces the protocol doc's tokens byte for byte.
func TestSignVectors(t *testing.T) {
	tests := []struct {
		name, resource, key, skn string
		expiry                   time.Time
		want                     string
	}{
		{"TV1 device", tvHost + "/devices/device-1", tvKey, "", tvExpiry,
			"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1&sig=rdQ00S0jHcECfmDFyIsrhJFEQdh1me1pXfFI7zjuC8Q%3D&se=1767225600"},
		{"TV2 module", tvHost + "/devices/device-1/modules/module-a", tvKey, "", tvExpiry,
			"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1%2Fmodules%2Fmodule-a&sig=lmXWX2qbScw2UQ%2Fs7YziFwMG%2BQyPsAE6CyZefIhzmx8%3D&se=1767225600"},
		{"TV3 service", tvHost, tvKey, "iothubowner", tvExpiry,
			"SharedAccessSignature sr=myhub.azure-devices.net&sig=mnVOCy0ieupY1%2FH3BnSINnUcRqZRXaiw4do9WEOWXUI%3D&se=1767225600&skn=iothubowner"},
		{"node device", "hub.example/devices/dev1", nodeKey, "", nodeExpiry,
			"SharedAccessSignature sr=hub.example%2Fdevices%2Fdev1&sig=LswQSpyfAr6NemxpK0mnrFYobbewfRzozlWMV1nWd5s%3D&se=2000000000"},
		{"node module", "hub.example/devices/dev1/modules/mod1", nodeKey, "", nodeExpiry,
			"SharedAccessSignature sr=hub.example%2Fdevices%2Fdev1%2Fmodules%2Fmod1&sig=oaVh5aeOgz%2BHW8tFKgLEIA16rEtoKjSAQJ0mgoL5XMc%3D&se=2000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sign(tt.resource, tt.key, tt.skn, tt.expiry)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestVerifyVectors accepts every SDK's token form exactly as sent, including
// the C SDK's unencoded sr with lowercase-escaped sig (TV4), the Node SDK's
// strict encoding with lowercase %2a, and Node's sr,sig,skn,se field order.
func TestVerifyVectors(t *testing.T) {
	tests := []struct {
		name, token, key, resource, skn string
		now                             time.Time
	}{
		{"TV1", "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1&sig=rdQ00S0jHcECfmDFyIsrhJFEQdh1me1pXfFI7zjuC8Q%3D&se=1767225600",
			tvKey, tvHost + "/devices/device-1", "", tvExpiry.Add(-time.Hour)},
		{"TV2", "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1%2Fmodules%2Fmodule-a&sig=lmXWX2qbScw2UQ%2Fs7YziFwMG%2BQyPsAE6CyZefIhzmx8%3D&se=1767225600",
			tvKey, tvHost + "/devices/device-1/modules/module-a", "", tvExpiry.Add(-time.Hour)},
		{"TV3", "SharedAccessSignature sr=myhub.azure-devices.net&sig=mnVOCy0ieupY1%2FH3BnSINnUcRqZRXaiw4do9WEOWXUI%3D&se=1767225600&skn=iothubowner",
			tvKey, tvHost, "iothubowner", tvExpiry.Add(-time.Hour)},
		{"TV4 C SDK", "SharedAccessSignature sr=myhub.azure-devices.net/devices/device-1&sig=qFpwrk6xEsvA4Xk0N5pdNqMw%2bTO33GE%2biXyo6Ljgx6s%3d&se=1767225600",
			tvKey, tvHost + "/devices/device-1", "", tvExpiry.Add(-time.Hour)},
		{"node strict %2a", "SharedAccessSignature sr=hub.example%2Fdevices%2Fdev%20%281%29%2a%21&sig=LHcHiT5%2B7E3Ns123p4WGTxcXzP8UVosrtSOa5u4dfE8%3D&se=2000000000",
			nodeKey, "hub.example/devices/dev (1)*!", "", nodeExpiry.Add(-time.Hour)},
		{"node service skn before se", "SharedAccessSignature sr=hub.example&sig=lG0tDQLyAoUWVgj8bm1rEnscrQvR7BF%2Fgc9OwCpjMDI%3D&skn=iothubowner&se=2000000000",
			nodeKey, "hub.example", "iothubowner", nodeExpiry.Add(-time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseSAS(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.Verify(tt.key, tt.now); err != nil {
				t.Errorf("Verify: %v", err)
			}
			res, err := tok.Resource()
			if err != nil || res != tt.resource {
				t.Errorf("Resource() = %q, %v; want %q", res, err, tt.resource)
			}
			if tok.SKN != tt.skn {
				t.Errorf("SKN = %q, want %q", tok.SKN, tt.skn)
			}
			if err := tok.Verify(tt.key, tok.Expiry); !errors.Is(err, ErrSASExpired) {
				t.Errorf("at expiry: got %v, want ErrSASExpired", err)
			}
			if err := tok.Verify(tvWrongKey, tt.now); !errors.Is(err, ErrSASSignature) {
				t.Errorf("wrong key: got %v, want ErrSASSignature", err)
			}
		})
	}
}

const tvWrongKey = "HwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

func TestVerifyRejectsTampering(t *testing.T) {
	tok, _ := Sign(tvHost+"/devices/device-1", tvKey, "", tvExpiry)
	for name, mutate := range map[string]func(SAS) SAS{
		"resource": func(s SAS) SAS { s.SR += "x"; return s },
		"expiry":   func(s SAS) SAS { s.SE = "1767225601"; return s },
		"sig":      func(s SAS) SAS { s.Sig = "AAAA" + s.Sig[4:]; return s },
	} {
		s, err := ParseSAS(tok)
		if err != nil {
			t.Fatal(err)
		}
		if err := mutate(s).Verify(tvKey, tvExpiry.Add(-time.Minute)); err == nil {
			t.Errorf("%s changed: Verify succeeded, want an error", name)
		}
	}
}

func TestParseSASMalformed(t *testing.T) {
	for _, tok := range []string{
		"", "sr=a&sig=b&se=1", "SharedAccessSignature sr=a&sig=b", "SharedAccessSignature sr=a&se=1",
		"SharedAccessSignature sig=b&se=1", "SharedAccessSignature sr=a&sig=b&se=soon", "SharedAccessSignature sr=a&sig=b&se=-5",
	} {
		if _, err := ParseSAS(tok); !errors.Is(err, ErrSASMalformed) {
			t.Errorf("ParseSAS(%q) = %v, want ErrSASMalformed", tok, err)
		}
	}
}

func TestResourceCovers(t *testing.T) {
	tests := []struct {
		granted, target string
		want            bool
	}{
		{"h/devices/d", "h/devices/d", true},
		{"h/devices/d", "h/devices/d/modules/m", true},
		{"h/devices/d", "h/devices/dx", false},
		{"h", "h/devices/d", true},
		{"H", "h/devices/d", true},
		{"h/devices/D", "h/devices/d", false},
		{"h/devices/d/modules/m", "h/devices/d", false},
		{"other", "h/devices/d", false},
		{"h/", "h/devices/d", true},
	}
	for _, tt := range tests {
		if got := ResourceCovers(tt.granted, tt.target); got != tt.want {
			t.Errorf("ResourceCovers(%q, %q) = %v, want %v", tt.granted, tt.target, got, tt.want)
		}
	}
}
