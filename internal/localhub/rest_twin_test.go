package localhub_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// call sends a service request to path (with api-version) signed with the
// iothubowner key; hdr are header name/value pairs (e.g. If-Match).
func (th *testHub) call(t testing.TB, method, path string, body []byte, hdr ...string) response {
	t.Helper()
	cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	req, err := http.NewRequest(method, "https://"+cs.HostName+path+"?"+iothub.MethodsQuery, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	req.Header.Set("Authorization", th.serviceToken(t))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := th.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantLegacyError checks an error of the twin and registry routes: what
// wantError checks, in body format B ("ErrorCode:Name;text" and a
// "Tracking ID:" exception message), the one the Node SDK parses.
func wantLegacyError(t testing.TB, r response, code int) {
	t.Helper()
	wantError(t, r, code)
	var b struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if prefix := "ErrorCode:" + iothub.ErrorName(code) + ";"; !strings.HasPrefix(b.Message, prefix) || len(b.Message) == len(prefix) {
		t.Errorf("Message %q, want %q and a text", b.Message, prefix+"…")
	}
	if !strings.HasPrefix(b.ExceptionMessage, "Tracking ID:") {
		t.Errorf("ExceptionMessage %q, want Tracking ID:…", b.ExceptionMessage)
	}
}

// twinDoc is the part of a service-side twin the tests look at.
type twinDoc struct {
	DeviceID         string          `json:"deviceId"`
	ModuleID         *string         `json:"moduleId"`
	ETag             string          `json:"etag"`
	DeviceEtag       string          `json:"deviceEtag"`
	Status           string          `json:"status"`
	ConnectionState  string          `json:"connectionState"`
	Tags             json.RawMessage `json:"tags"`
	Capabilities     json.RawMessage `json:"capabilities"`
	AuthType         string          `json:"authenticationType"`
	StatusUpdateTime string          `json:"statusUpdateTime"`
	Properties       struct {
		Desired  map[string]json.RawMessage `json:"desired"`
		Reported map[string]json.RawMessage `json:"reported"`
	} `json:"properties"`
}

// wantTwin checks a successful twin answer (200, JSON content type, the
// quoted etag in ETag) and returns the document.
func wantTwin(t testing.TB, r response) twinDoc {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q, want application/json; charset=utf-8", ct)
	}
	var d twinDoc
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("twin %s: %v", r.body, err)
	}
	if got, want := r.header.Get("ETag"), `"`+d.ETag+`"`; d.ETag == "" || got != want {
		t.Errorf("ETag header %q, want %q (the document's etag quoted)", got, want)
	}
	return d
}

// TestTwinGet: device and module twins as the service reads them.
func TestTwinGet(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "edge/mod1"}})
	d := wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("dev1", ""), nil))
	if d.DeviceID != "dev1" || d.ModuleID != nil || d.ETag != "AAAAAAAAAAE=" || d.Status != "enabled" ||
		d.ConnectionState != "Disconnected" || d.AuthType != "sas" || d.DeviceEtag != "MA==" ||
		d.StatusUpdateTime != "0001-01-01T00:00:00Z" || d.Tags != nil || string(d.Capabilities) != `{"iotEdge":false}` {
		t.Errorf("device twin %+v", d)
	}
	if string(d.Properties.Desired["$version"]) != "1" || string(d.Properties.Reported["$version"]) != "1" {
		t.Errorf("versions: desired %s, reported %s; want 1 and 1", d.Properties.Desired["$version"], d.Properties.Reported["$version"])
	}
	m := wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("edge", "mod1"), nil))
	if m.DeviceID != "edge" || m.ModuleID == nil || *m.ModuleID != "mod1" || m.Capabilities != nil {
		t.Errorf("module twin %+v", m)
	}
	th.mustConnect(t, "dev1")
	if d := wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("dev1", ""), nil)); d.ConnectionState != "Connected" {
		t.Errorf("connectionState %q with the device connected, want Connected", d.ConnectionState)
	}
}

// TestTwinUpdate: PATCH merges, PUT replaces, If-Match is honoured (quoted,
// unquoted, "*", absent), a stale etag or a body the rules refuse leaves
// the twin as it was; for device and module twins alike.
func TestTwinUpdate(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "edge/mod1"}})
	for _, target := range []struct{ device, module string }{{"dev1", ""}, {"edge", "mod1"}} {
		t.Run(iothub.ClientID(target.device, target.module), func(t *testing.T) {
			path := iothub.TwinPath(target.device, target.module)
			get := func() twinDoc { return wantTwin(t, th.call(t, http.MethodGet, path, nil)) }
			start := get()

			d := wantTwin(t, th.call(t, http.MethodPatch, path, []byte(`{"tags":{"site":"a","x":1},"properties":{"desired":{"interval":5}}}`), "If-Match", `"*"`))
			if string(d.Tags) != `{"site":"a","x":1}` || string(d.Properties.Desired["interval"]) != "5" || d.ETag == start.ETag {
				t.Fatalf("after PATCH *: tags %s, desired %v, etag %s (was %s)", d.Tags, d.Properties.Desired, d.ETag, start.ETag)
			}
			d = wantTwin(t, th.call(t, http.MethodPatch, path, []byte(`{"tags":{"x":null}}`), "If-Match", `"`+d.ETag+`"`))
			if string(d.Tags) != `{"site":"a"}` {
				t.Errorf("after PATCH with the matching etag: tags %s, want {\"site\":\"a\"}", d.Tags)
			}
			d = wantTwin(t, th.call(t, http.MethodPatch, path, []byte(`{"tags":{"y":2}}`), "If-Match", d.ETag))
			if string(d.Tags) != `{"site":"a","y":2}` {
				t.Errorf("after PATCH with the unquoted etag: tags %s", d.Tags)
			}
			d = wantTwin(t, th.call(t, http.MethodPatch, path, []byte(`{"properties":{"desired":{"mode":"eco"}}}`)))
			if string(d.Properties.Desired["mode"]) != `"eco"` || string(d.Properties.Desired["interval"]) != "5" {
				t.Errorf("after PATCH without If-Match: desired %v", d.Properties.Desired)
			}
			d = wantTwin(t, th.call(t, http.MethodPut, path, []byte(`{"tags":{"z":3},"properties":{"desired":{"only":true}}}`), "If-Match", `"*"`))
			if string(d.Tags) != `{"z":3}` || d.Properties.Desired["interval"] != nil || string(d.Properties.Desired["only"]) != "true" {
				t.Errorf("after PUT: tags %s, desired %v; want them replaced", d.Tags, d.Properties.Desired)
			}

			before := th.call(t, http.MethodGet, path, nil)
			wantLegacyError(t, th.call(t, http.MethodPatch, path, []byte(`{"tags":{"w":1}}`), "If-Match", `"`+start.ETag+`"`), iothub.CodePreconditionFailed)
			wantLegacyError(t, th.call(t, http.MethodPut, path, []byte(`{"tags":{"w":1}}`), "If-Match", `"AAAAAAAAAAA="`), iothub.CodePreconditionFailed)
			wantLegacyError(t, th.call(t, http.MethodPatch, path, []byte(`{"tags":{"a.b":1}}`), "If-Match", `"*"`), iothub.CodeArgumentInvalid)
			wantLegacyError(t, th.call(t, http.MethodPatch, path, []byte(`{"properties":{"desired":{"$bad":1}}}`)), iothub.CodeArgumentInvalid)
			if after := th.call(t, http.MethodGet, path, nil); string(after.body) != string(before.body) {
				t.Errorf("refused writes changed the twin:\nbefore %s\nafter  %s", before.body, after.body)
			}
		})
	}
}

// TestTwinRouteErrors: unknown identities, escaped ids, other HTTP methods
// and authorization on the twin routes, all in body format B.
func TestTwinRouteErrors(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "edge/mod1"}})
	cases := []struct {
		name, method, path string
		code               int
	}{
		{"unknown device", http.MethodGet, "/twins/nodev", iothub.CodeDeviceNotFound},
		{"unknown device PATCH", http.MethodPatch, "/twins/nodev", iothub.CodeDeviceNotFound},
		{"unknown device PUT", http.MethodPut, "/twins/nodev", iothub.CodeDeviceNotFound},
		{"unknown module", http.MethodGet, "/twins/edge/modules/nomod", iothub.CodeModuleNotFound},
		{"unknown module PATCH", http.MethodPatch, "/twins/edge/modules/nomod", iothub.CodeModuleNotFound},
		{"module of an unknown device", http.MethodGet, "/twins/nodev/modules/mod1", iothub.CodeDeviceNotFound},
		{"%2F in the device id", http.MethodGet, "/twins/edge%2Fmod1", iothub.CodeArgumentInvalid},
		{"%2F in the device id PATCH", http.MethodPatch, "/twins/edge%2Fmod1", iothub.CodeArgumentInvalid},
		{"%2F in the module id", http.MethodGet, "/twins/edge/modules/mod1%2Fx", iothub.CodeArgumentInvalid},
		{"POST", http.MethodPost, "/twins/dev1", iothub.CodeMethodNotAllowed},
		{"DELETE", http.MethodDelete, "/twins/dev1", iothub.CodeMethodNotAllowed},
		{"DELETE module", http.MethodDelete, "/twins/edge/modules/mod1", iothub.CodeMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := th.call(t, tc.method, tc.path, []byte(`{"tags":{"a":1}}`), "If-Match", `"*"`)
			wantLegacyError(t, r, tc.code)
			if tc.code == iothub.CodeMethodNotAllowed && r.header.Get("Allow") != "GET, PATCH, PUT" {
				t.Errorf("Allow %q, want GET, PATCH, PUT", r.header.Get("Allow"))
			}
		})
	}
	t.Run("unauthorized", func(t *testing.T) {
		cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
		wrong, _ := iothub.Sign(cs.HostName, otherKey, "iothubowner", time.Now().Add(time.Hour))
		service, _ := iothub.Sign(cs.HostName, th.policyKey(t, "service"), "service", time.Now().Add(time.Hour))
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodPut} {
			for _, auth := range []string{"", wrong} {
				wantLegacyError(t, th.request(t, m, iothub.TwinPath("dev1", "")+"?"+iothub.MethodsQuery, auth, []byte(`{}`)), iothub.CodeUnauthorized)
			}
			// The service policy has ServiceConnect: twins are its to use.
			if r := th.request(t, m, iothub.TwinPath("dev1", "")+"?"+iothub.MethodsQuery, service, []byte(`{}`)); r.status != http.StatusOK {
				t.Errorf("%s with the service policy: %d %s, want 200", m, r.status, r.body)
			}
		}
	})
	t.Run("no api-version", func(t *testing.T) {
		wantLegacyError(t, th.request(t, http.MethodGet, iothub.TwinPath("dev1", ""), th.serviceToken(t), nil), iothub.CodeArgumentInvalid)
	})
}

// policyKey reads a shared access policy's key from registry.json.
func (th *testHub) policyKey(t testing.TB, name string) string {
	t.Helper()
	var reg struct{ Policies map[string]string }
	readJSONFile(t, th.opts.Dir+"/registry.json", &reg)
	if reg.Policies[name] == "" {
		t.Fatalf("registry.json has no policy %q", name)
	}
	return reg.Policies[name]
}
