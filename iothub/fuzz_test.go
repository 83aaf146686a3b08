package iothub

import (
	"strings"
	"testing"
	"time"
)

// FuzzConnectionString: parsing never panics, errors never echo values, and
// what parses renders and re-parses to the same value.
func FuzzConnectionString(f *testing.F) {
	for _, s := range []string{
		"HostName=h.net;DeviceId=d1;SharedAccessKey=" + tvKey,
		"HostName=localhost;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + tvKey + ";GatewayHostName=localhost:8883",
		"HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + tvKey,
		"HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1",
		"HostName=h;DeviceId=d;x509=true", ";;=;", "a=b=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConnectionString(s)
		if err != nil {
			return
		}
		again, err := ParseConnectionString(c.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", c.String(), err)
		}
		if again != c && !strings.Contains(s, "UseProvisioning") {
			// Values with ';' cannot round-trip; everything else must.
			if !strings.ContainsAny(c.HostName+c.DeviceID+c.ModuleID+c.SharedAccessKeyName+c.GatewayHostName+c.SharedAccessSignature, ";") {
				t.Fatalf("round trip changed %+v to %+v", c, again)
			}
		}
	})
}

// FuzzTopics: topic and username parsers never panic, and what parses
// re-renders to a topic that parses to the same values.
func FuzzTopics(f *testing.F) {
	for _, s := range []string{
		"$iothub/methods/POST/reboot/?$rid=7", "$iothub/methods/res/200/?$rid=7",
		"$iothub/methods/POST/m/?$rid=5&x=y", "h.net/d1/m1/?api-version=2021-04-12&DeviceClientType=x",
		"$iothub/methods/POST//", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, rid, err := ParseMethodRequestTopic(s); err == nil {
			m2, rid2, err := ParseMethodRequestTopic(MethodRequestTopic(m, rid))
			if err != nil || m2 != m || rid2 != rid {
				t.Fatalf("request topic round trip %q: %q %q %v", s, m2, rid2, err)
			}
		}
		if st, rid, err := ParseMethodResponseTopic(s); err == nil {
			st2, rid2, err := ParseMethodResponseTopic(MethodResponseTopic(st, rid))
			if err != nil || st2 != st || rid2 != rid {
				t.Fatalf("response topic round trip %q: %d %q %v", s, st2, rid2, err)
			}
		}
		_, _ = ParseUsername(s)
		if tok, err := ParseSAS(s); err == nil {
			_ = tok.Verify(tvKey, time.Unix(0, 0))
			_, _ = tok.Resource()
		}
		_, _ = DecodeMethodRequest([]byte(s))
		_ = ParseError(400, "", []byte(s))
	})
}
