package localhub_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// Keys a test gives the registry (32 and 16 bytes).
const (
	givenPrimary   = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	givenSecondary = "ZmVkY2JhOTg3NjU0MzIxMA=="
)

// identityDoc is a device or module as the registry API returns it.
type identityDoc struct {
	DeviceID                   string  `json:"deviceId"`
	ModuleID                   string  `json:"moduleId"`
	ManagedBy                  *string `json:"managedBy"`
	GenerationID               string  `json:"generationId"`
	ETag                       string  `json:"etag"`
	ConnectionState            string  `json:"connectionState"`
	Status                     string  `json:"status"`
	StatusReason               *string `json:"statusReason"`
	ConnectionStateUpdatedTime string  `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string  `json:"statusUpdatedTime"`
	LastActivityTime           string  `json:"lastActivityTime"`
	CloudToDeviceMessageCount  *int    `json:"cloudToDeviceMessageCount"`
	Authentication             struct {
		SymmetricKey struct {
			PrimaryKey, SecondaryKey string
		} `json:"symmetricKey"`
		X509Thumbprint map[string]*string `json:"x509Thumbprint"`
		Type           string             `json:"type"`
	} `json:"authentication"`
	Capabilities *struct {
		IotEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
}

// wantIdentity checks a successful registry answer (200, JSON, the quoted
// etag in ETag) and returns the identity.
func wantIdentity(t testing.TB, r response) identityDoc {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var d identityDoc
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("identity %s: %v", r.body, err)
	}
	if got, want := r.header.Get("ETag"), `"`+d.ETag+`"`; d.ETag == "" || got != want {
		t.Errorf("ETag header %q, want %q", got, want)
	}
	return d
}

// keyCreds are the CONNECT fields of an identity signing with key.
func (th *testHub) keyCreds(t testing.TB, device, module, key string) deviceCreds {
	t.Helper()
	tok, err := iothub.Sign(iothub.IdentityResource(localhub.HostName, device, module), key, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id := iothub.ClientID(device, module)
	return deviceCreds{
		dial:     strings.Replace(th.Info().MQTTAddr, "127.0.0.1", localhub.HostName, 1),
		clientID: id,
		username: iothub.Username(localhub.HostName, id, "methodd-test/1.0"),
		password: tok,
	}
}

// wantRefused checks that a CONNECT with c is refused with CONNACK 5 for
// reason.
func (th *testHub) wantRefused(t testing.TB, c deviceCreds, reason error) {
	t.Helper()
	mark := th.events.mark()
	if _, err := th.connect(t, c, nil); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("connect %s: %v, want CONNACK 5", c.clientID, err)
	}
	e := th.events.wait(t, mark, "the refusal of "+c.clientID, is(localhub.EventConnRefused, c.clientID))
	if !errors.Is(e.Err, reason) {
		t.Errorf("refused for %v, want %v", e.Err, reason)
	}
}

// TestRegistryCreateDevice: a created device has the real service's shape,
// generated keys that both sign connections, a twin and an entry in
// hub.json; creating it again is 409001.
func TestRegistryCreateDevice(t *testing.T) {
	th := startHub(t, localhub.Options{})
	// The Node SDK's create: no If-Match, authentication normalized to
	// empty sas keys.
	body := `{"deviceId":"new1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`
	d := wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("new1", ""), []byte(body)))
	if d.DeviceID != "new1" || d.ETag != "MA==" || d.GenerationID == "" || d.Status != "enabled" || d.StatusReason != nil ||
		d.ConnectionState != "Disconnected" || d.Authentication.Type != "sas" || d.Capabilities == nil || d.Capabilities.IotEdge ||
		d.CloudToDeviceMessageCount == nil || *d.CloudToDeviceMessageCount != 0 {
		t.Errorf("created device %+v", d)
	}
	for _, ts := range []string{d.StatusUpdatedTime, d.ConnectionStateUpdatedTime, d.LastActivityTime} {
		if ts != "0001-01-01T00:00:00Z" {
			t.Errorf("time %q, want 0001-01-01T00:00:00Z", ts)
		}
	}
	if tp := d.Authentication.X509Thumbprint; len(tp) != 2 || tp["primaryThumbprint"] != nil || tp["secondaryThumbprint"] != nil {
		t.Errorf("x509Thumbprint %v, want both null", tp)
	}
	keys := d.Authentication.SymmetricKey
	for _, k := range []string{keys.PrimaryKey, keys.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != 32 {
			t.Errorf("generated key %q, want base64 of 32 bytes", k)
		}
	}
	if keys.PrimaryKey == keys.SecondaryKey {
		t.Error("the two generated keys are equal")
	}
	if got := wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("new1", ""), nil)); !reflect.DeepEqual(got, d) {
		t.Errorf("GET %+v\nwant the created %+v", got, d)
	}
	info, err := localhub.ReadInfo(th.opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := iothub.ParseDeviceConnectionString(info.Devices["new1"]); err != nil || cs.SharedAccessKey != keys.PrimaryKey {
		t.Errorf("hub.json's new1: %q (%v), want the primary key", info.Devices["new1"], err)
	}
	th.mustConnect(t, "new1").c.Disconnect(0)
	if _, err := th.connect(t, th.keyCreds(t, "new1", "", keys.SecondaryKey), nil); err != nil {
		t.Errorf("connect signed with the secondary key: %v", err)
	}
	if tw := wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("new1", ""), nil)); tw.DeviceEtag != "MA==" {
		t.Errorf("twin deviceEtag %q, want MA==", tw.DeviceEtag)
	}
	wantLegacyError(t, th.call(t, http.MethodPut, iothub.DevicePath("new1", ""), []byte(body)), iothub.CodeDeviceAlreadyExists)
	wantLegacyError(t, th.call(t, http.MethodPut, iothub.DevicePath("dev1", ""), []byte(`{}`)), iothub.CodeDeviceAlreadyExists)
}

// TestRegistryGivenKeys: keys in the body are used as they are.
func TestRegistryGivenKeys(t *testing.T) {
	th := startHub(t, localhub.Options{})
	body := `{"deviceId":"k1","authentication":{"symmetricKey":{"primaryKey":"` + givenPrimary + `","secondaryKey":"` + givenSecondary + `"}}}`
	d := wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("k1", ""), []byte(body)))
	if d.Authentication.SymmetricKey.PrimaryKey != givenPrimary || d.Authentication.SymmetricKey.SecondaryKey != givenSecondary {
		t.Fatalf("keys %+v, want the given ones", d.Authentication.SymmetricKey)
	}
	for _, k := range []string{givenPrimary, givenSecondary} {
		dev, err := th.connect(t, th.keyCreds(t, "k1", "", k), nil)
		if err != nil {
			t.Fatalf("connect with a given key: %v", err)
		}
		dev.c.Disconnect(0)
	}
	th.wantRefused(t, th.keyCreds(t, "k1", "", otherKey), iothub.ErrSASSignature)
}

// TestRegistryRefusesBadBodies: ids, keys, thumbprints, authentication
// types, statuses and IoT Edge the hub cannot register are 400004; a body that is no JSON object is
// 400006; nothing is created.
func TestRegistryRefusesBadBodies(t *testing.T) {
	th := startHub(t, localhub.Options{})
	cases := []struct {
		name, path, body string
		code             int
		text             string // in the message
	}{
		{"not base64", "/devices/b1", `{"authentication":{"symmetricKey":{"primaryKey":"not base64!"}}}`, iothub.CodeArgumentInvalid, "primaryKey"},
		{"short key", "/devices/b1", `{"authentication":{"symmetricKey":{"secondaryKey":"` + base64.StdEncoding.EncodeToString(make([]byte, 8)) + `"}}}`, iothub.CodeArgumentInvalid, "secondaryKey"},
		{"long key", "/devices/b1", `{"authentication":{"symmetricKey":{"primaryKey":"` + base64.StdEncoding.EncodeToString(make([]byte, 65)) + `"}}}`, iothub.CodeArgumentInvalid, "16 to 64"},
		{"short thumbprint", "/devices/b1", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB"}}}`, iothub.CodeArgumentInvalid, "primaryThumbprint"},
		{"thumbprint with colons", "/devices/b1", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("AB:", 19) + `AB"}}}`, iothub.CodeArgumentInvalid, "primaryThumbprint"},
		{"thumbprint not hex", "/devices/b1", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("zz", 20) + `"}}}`, iothub.CodeArgumentInvalid, "primaryThumbprint"},
		{"bad secondary thumbprint", "/devices/b1", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("ab", 20) + `","secondaryThumbprint":"` + strings.Repeat("ab", 21) + `"}}}`, iothub.CodeArgumentInvalid, "secondaryThumbprint"},
		{"selfSigned without thumbprint", "/devices/b1", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":"` + strings.Repeat("ab", 20) + `"}}}`, iothub.CodeArgumentInvalid, "primaryThumbprint"},
		{"selfSigned with key", "/devices/b1", `{"authentication":{"type":"selfSigned","symmetricKey":{"primaryKey":"` + givenPrimary + `"},"x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("ab", 20) + `"}}}`, iothub.CodeArgumentInvalid, "symmetricKey"},
		{"certificateAuthority with thumbprint", "/devices/b1", `{"authentication":{"type":"certificateAuthority","x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("ab", 20) + `"}}}`, iothub.CodeArgumentInvalid, "certificateAuthority"},
		{"certificateAuthority with key", "/devices/b1", `{"authentication":{"type":"certificateAuthority","symmetricKey":{"secondaryKey":"` + givenSecondary + `"}}}`, iothub.CodeArgumentInvalid, "certificateAuthority"},
		{"thumbprint with sas", "/devices/b1", `{"authentication":{"type":"sas","x509Thumbprint":{"secondaryThumbprint":"` + strings.Repeat("ab", 20) + `"}}}`, iothub.CodeArgumentInvalid, "x509Thumbprint"},
		{"thumbprint without type", "/devices/b1", `{"authentication":{"x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("ab", 20) + `"}}}`, iothub.CodeArgumentInvalid, "x509Thumbprint"},
		{"unknown type", "/devices/b1", `{"authentication":{"type":"tpm"}}`, iothub.CodeArgumentInvalid, "authentication.type"},
		{"iotEdge", "/devices/b1", `{"capabilities":{"iotEdge":true}}`, iothub.CodeArgumentInvalid, "IoT Edge"},
		{"unknown status", "/devices/b1", `{"status":"paused"}`, iothub.CodeArgumentInvalid, "status"},
		{"long statusReason", "/devices/b1", `{"status":"disabled","statusReason":"` + strings.Repeat("r", 129) + `"}`, iothub.CodeArgumentInvalid, "statusReason"},
		{"deviceId differs", "/devices/b1", `{"deviceId":"b2"}`, iothub.CodeArgumentInvalid, "deviceId"},
		{"moduleId differs", "/devices/dev1/modules/m1", `{"deviceId":"dev1","moduleId":"m2"}`, iothub.CodeArgumentInvalid, "moduleId"},
		{"bad device id", "/devices/a%23b", `{}`, iothub.CodeArgumentInvalid, "ids must be"},
		{"bad module id", "/devices/dev1/modules/a%2Fb", `{}`, iothub.CodeArgumentInvalid, "ids must be"},
		{"not JSON", "/devices/b1", `{deviceId:`, iothub.CodeIotHubFormatError, ""},
		{"not an object", "/devices/b1", `["b1"]`, iothub.CodeIotHubFormatError, ""},
		{"empty", "/devices/b1", ``, iothub.CodeIotHubFormatError, ""},
		{"wrong type", "/devices/b1", `{"status":1}`, iothub.CodeIotHubFormatError, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := th.call(t, http.MethodPut, tc.path, []byte(tc.body))
			wantLegacyError(t, r, tc.code)
			if !strings.Contains(string(r.body), tc.text) {
				t.Errorf("message %s does not mention %q", r.body, tc.text)
			}
		})
	}
	wantLegacyError(t, th.call(t, http.MethodGet, "/devices/b1", nil), iothub.CodeDeviceNotFound)
	wantLegacyError(t, th.call(t, http.MethodGet, "/devices/dev1/modules/m1", nil), iothub.CodeModuleNotFound)
}

// TestRegistryUpdateAndDisable: updates follow If-Match; a disabled device
// is disconnected, refused at CONNECT, 404001 for calls, and shown
// disabled; enabled again it connects.
func TestRegistryUpdateAndDisable(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev1/mod1"}})
	path := iothub.DevicePath("dev1", "")
	orig := wantIdentity(t, th.call(t, http.MethodGet, path, nil))
	dev := th.mustConnect(t, "dev1")
	dev.subscribe(t, 0, echo)
	mod := th.mustConnect(t, "dev1/mod1")

	wantLegacyError(t, th.call(t, http.MethodPut, path, []byte(`{"deviceId":"dev1","status":"disabled"}`), "If-Match", `"MQ=="`), iothub.CodePreconditionFailed)
	wantLegacyError(t, th.call(t, http.MethodPut, iothub.DevicePath("ghost", ""), []byte(`{}`), "If-Match", `"MA=="`), iothub.CodeDeviceNotFound)

	mark := th.events.mark()
	d := wantIdentity(t, th.call(t, http.MethodPut, path, []byte(`{"deviceId":"dev1","status":"disabled","statusReason":"stolen"}`), "If-Match", `"*"`))
	if d.Status != "disabled" || d.StatusReason == nil || *d.StatusReason != "stolen" || d.ETag != "MQ==" ||
		d.StatusUpdatedTime == "0001-01-01T00:00:00Z" || d.GenerationID != orig.GenerationID || !reflect.DeepEqual(d.Authentication, orig.Authentication) {
		t.Errorf("disabled device %+v\nwas %+v", d, orig)
	}
	th.events.wait(t, mark, "dev1 to be disconnected", isErr(localhub.EventDisconnected, "dev1", localhub.ErrIdentityDisabled))
	th.events.wait(t, mark, "dev1/mod1 to be disconnected", isErr(localhub.EventDisconnected, "dev1/mod1", localhub.ErrIdentityDisabled))
	_ = dev.waitLost(t)
	_ = mod.waitLost(t)
	th.wantRefused(t, th.creds(t, "dev1", time.Hour), localhub.ErrIdentityDisabled)
	th.wantRefused(t, th.creds(t, "dev1/mod1", time.Hour), localhub.ErrIdentityDisabled)
	wantError(t, th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"}), iothub.CodeDeviceNotFound)
	if tw := wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("dev1", ""), nil)); tw.Status != "disabled" || tw.DeviceEtag != "MQ==" || tw.StatusUpdateTime == "0001-01-01T00:00:00Z" {
		t.Errorf("twin of the disabled device: %+v", tw)
	}

	// Enabled again with the current etag (unquoted works too); the keys
	// not given are kept.
	d = wantIdentity(t, th.call(t, http.MethodPut, path, []byte(`{"deviceId":"dev1","status":"enabled"}`), "If-Match", d.ETag))
	if d.Status != "enabled" || d.ETag != "Mg==" || !reflect.DeepEqual(d.Authentication, orig.Authentication) {
		t.Errorf("enabled device %+v", d)
	}
	th.mustConnect(t, "dev1").subscribe(t, 0, echo)
	if r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"}); r.status != http.StatusOK {
		t.Errorf("call after enabling: %d %s", r.status, r.body)
	}

	// New keys given in an update replace the old ones (hub.json follows).
	d = wantIdentity(t, th.call(t, http.MethodPut, path, []byte(`{"deviceId":"dev1","authentication":{"symmetricKey":{"primaryKey":"`+givenPrimary+`"}}}`), "If-Match", `"*"`))
	if d.Authentication.SymmetricKey.PrimaryKey != givenPrimary || d.Authentication.SymmetricKey.SecondaryKey != orig.Authentication.SymmetricKey.SecondaryKey {
		t.Errorf("keys after rekeying %+v", d.Authentication.SymmetricKey)
	}
	if cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"]); cs.SharedAccessKey != givenPrimary {
		t.Errorf("hub.json key %q after rekeying, want %q", cs.SharedAccessKey, givenPrimary)
	}
	th.wantRefused(t, th.keyCreds(t, "dev1", "", orig.Authentication.SymmetricKey.PrimaryKey), iothub.ErrSASSignature)
}

// TestRegistryModules: modules are created, listed, read and deleted
// under their device, each with a twin and keys of its own.
func TestRegistryModules(t *testing.T) {
	th := startHub(t, localhub.Options{})
	mpath := iothub.DevicePath("dev1", "m1")
	wantLegacyError(t, th.call(t, http.MethodPut, iothub.DevicePath("nodev", "m1"), []byte(`{}`)), iothub.CodeDeviceNotFound)
	m := wantIdentity(t, th.call(t, http.MethodPut, mpath, []byte(`{"moduleId":"m1","deviceId":"dev1","managedBy":"me"}`)))
	if m.ModuleID != "m1" || m.DeviceID != "dev1" || m.ManagedBy == nil || *m.ManagedBy != "me" || m.ETag != "MA==" ||
		m.Capabilities != nil || m.Status != "" || m.Authentication.Type != "sas" || m.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Errorf("created module %+v", m)
	}
	wantLegacyError(t, th.call(t, http.MethodPut, mpath, []byte(`{}`)), iothub.CodeModuleAlreadyExists)
	wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("dev1", "m2"), []byte(`{}`)))
	if got := wantIdentity(t, th.call(t, http.MethodGet, mpath, nil)); got.ModuleID != "m1" || got.ETag != m.ETag {
		t.Errorf("GET module %+v", got)
	}
	r := th.call(t, http.MethodGet, iothub.DevicePath("dev1", "")+"/modules", nil)
	var list []identityDoc
	if err := json.Unmarshal(r.body, &list); r.status != http.StatusOK || err != nil || len(list) != 2 || list[0].ModuleID != "m1" || list[1].ModuleID != "m2" {
		t.Errorf("modules of dev1: %d %s (%v)", r.status, r.body, err)
	}
	if r := th.call(t, http.MethodGet, iothub.DevicePath("nodev", "")+"/modules", nil); r.status != http.StatusNotFound {
		t.Errorf("modules of an unknown device: %d, want 404", r.status)
	}
	wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("dev1", "m1"), nil))
	conn := th.mustConnect(t, "dev1/m1")

	wantLegacyError(t, th.call(t, http.MethodDelete, mpath, nil, "If-Match", `"MQ=="`), iothub.CodePreconditionFailed)
	mark := th.events.mark()
	if r := th.call(t, http.MethodDelete, mpath, nil, "If-Match", `"MA=="`); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("DELETE module: %d %s, want 204", r.status, r.body)
	}
	th.events.wait(t, mark, "the module's connection to end", isErr(localhub.EventDisconnected, "dev1/m1", localhub.ErrIdentityDeleted))
	_ = conn.waitLost(t)
	wantLegacyError(t, th.call(t, http.MethodGet, mpath, nil), iothub.CodeModuleNotFound)
	wantLegacyError(t, th.call(t, http.MethodGet, iothub.TwinPath("dev1", "m1"), nil), iothub.CodeModuleNotFound)
	wantLegacyError(t, th.call(t, http.MethodDelete, mpath, nil, "If-Match", `"*"`), iothub.CodeModuleNotFound)
	th.wantRefused(t, th.keyCreds(t, "dev1", "m1", m.Authentication.SymmetricKey.PrimaryKey), localhub.ErrUnknownIdentity)
	wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("dev1", "m2"), nil))
}

// TestRegistryDeleteDevice: deleting a device removes its modules, twins,
// keys and connections; created again it is a new identity that starts
// without the old persistent session.
func TestRegistryDeleteDevice(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "gone/m1"}})
	dev := th.mustConnect(t, "gone")
	dev.subscribe(t, 1, echo)
	mod := th.mustConnect(t, "gone/m1")
	oldCreds := th.creds(t, "gone", time.Hour)
	orig := wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("gone", ""), nil))

	wantLegacyError(t, th.call(t, http.MethodDelete, iothub.DevicePath("gone", ""), nil, "If-Match", `"MQ=="`), iothub.CodePreconditionFailed)
	mark := th.events.mark()
	if r := th.call(t, http.MethodDelete, iothub.DevicePath("gone", ""), nil, "If-Match", `"*"`); r.status != http.StatusNoContent {
		t.Fatalf("DELETE device: %d %s, want 204", r.status, r.body)
	}
	for _, id := range []string{"gone", "gone/m1"} {
		th.events.wait(t, mark, id+"'s connection to end", isErr(localhub.EventDisconnected, id, localhub.ErrIdentityDeleted))
	}
	_ = dev.waitLost(t)
	_ = mod.waitLost(t)
	wantLegacyError(t, th.call(t, http.MethodGet, iothub.DevicePath("gone", ""), nil), iothub.CodeDeviceNotFound)
	wantLegacyError(t, th.call(t, http.MethodGet, iothub.DevicePath("gone", "m1"), nil), iothub.CodeDeviceNotFound)
	wantLegacyError(t, th.call(t, http.MethodGet, iothub.TwinPath("gone", ""), nil), iothub.CodeDeviceNotFound)
	wantLegacyError(t, th.call(t, http.MethodGet, iothub.TwinPath("gone", "m1"), nil), iothub.CodeDeviceNotFound)
	wantLegacyError(t, th.call(t, http.MethodDelete, iothub.DevicePath("gone", ""), nil), iothub.CodeDeviceNotFound)
	wantError(t, th.invoke(t, "gone", "", iothub.MethodRequest{MethodName: "m"}), iothub.CodeDeviceNotFound)
	th.wantRefused(t, oldCreds, localhub.ErrUnknownIdentity)
	th.wantRefused(t, th.keyCreds(t, "gone", "m1", orig.Authentication.SymmetricKey.PrimaryKey), localhub.ErrUnknownIdentity)
	if _, ok := th.Info().Devices["gone"]; ok {
		t.Error("hub.json still lists the deleted device")
	}
	if _, err := os.Stat(th.opts.Dir + "/twins/gone.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("twin file of the deleted device: %v, want it gone", err)
	}
	wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("dev1", ""), nil))

	// The same id again: a new generation, a fresh twin, no inherited
	// subscription.
	again := wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("gone", ""), []byte(`{"deviceId":"gone"}`)))
	if again.GenerationID == orig.GenerationID || reflect.DeepEqual(again.Authentication, orig.Authentication) {
		t.Errorf("re-created device %+v has the old generation or keys", again)
	}
	mark = th.events.mark()
	th.mustConnect(t, "gone")
	if e := th.events.wait(t, mark, "the new gone to connect", is(localhub.EventConnected, "gone")); e.Subscribed {
		t.Error("the re-created device inherited the deleted one's methods subscription")
	}
}

// TestRegistryRoutes: only iothubowner may use the registry; other HTTP
// methods are 405 with Allow.
func TestRegistryRoutes(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1/m1"}})
	cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	service, _ := iothub.Sign(cs.HostName, th.policyKey(t, "service"), "service", time.Now().Add(time.Hour))
	for _, p := range []string{"/devices/dev1", "/devices/dev1/modules", "/devices/dev1/modules/m1", "/devices/new"} {
		for _, auth := range []string{"", service} {
			wantLegacyError(t, th.request(t, http.MethodGet, p+"?"+iothub.MethodsQuery, auth, nil), iothub.CodeUnauthorized)
			if !strings.HasSuffix(p, "/modules") { // GET only there
				wantLegacyError(t, th.request(t, http.MethodPut, p+"?"+iothub.MethodsQuery, auth, []byte(`{}`)), iothub.CodeUnauthorized)
			}
		}
	}
	cases := []struct{ method, path, allow string }{
		{http.MethodPost, "/devices/dev1", "GET, PUT, DELETE"},
		{http.MethodPatch, "/devices/dev1/modules/m1", "GET, PUT, DELETE"},
		{http.MethodPost, "/devices/dev1/modules", "GET"},
		{http.MethodDelete, "/devices/dev1/modules", "GET"},
	}
	for _, tc := range cases {
		r := th.call(t, tc.method, tc.path, []byte(`{}`))
		wantLegacyError(t, r, iothub.CodeMethodNotAllowed)
		if got := r.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

// TestRegistryListDevices: GET /devices (C#) and /devices/ (Node's
// Registry.list) list the devices in id order, modules excluded, as GET
// /devices/{id} shows each, at most top of them.
func TestRegistryListDevices(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "a/m1", "b"}})
	ids := func(r response) []string {
		t.Helper()
		var devs []struct {
			DeviceID string `json:"deviceId"`
			ModuleID string `json:"moduleId"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &devs) != nil {
			t.Fatalf("got %d %s, want 200 and an array", r.status, r.body)
		}
		var out []string
		for _, d := range devs {
			out = append(out, d.DeviceID+"/"+d.ModuleID)
		}
		return out
	}
	for _, path := range []string{"/devices", "/devices/"} {
		if got, want := ids(th.call(t, http.MethodGet, path, nil)), []string{"a/", "b/", "dev1/"}; !slices.Equal(got, want) {
			t.Errorf("GET %s: got %v, want %v", path, got, want)
		}
	}
	if got, want := ids(th.call(t, http.MethodGet, "/devices/", nil)), ids(th.call(t, http.MethodGet, "/devices", nil)); !slices.Equal(got, want) {
		t.Errorf("the two paths differ: %v and %v", got, want)
	}
	one := th.call(t, http.MethodGet, "/devices/dev1", nil)
	all := th.call(t, http.MethodGet, "/devices", nil)
	if !bytes.Contains(all.body, one.body) {
		t.Errorf("the list does not show dev1 as GET /devices/dev1 does:\n%s\n%s", all.body, one.body)
	}
	if got, want := ids(th.callQuery(t, "/devices/", "&top=2")), []string{"a/", "b/"}; !slices.Equal(got, want) {
		t.Errorf("top=2: got %v, want %v", got, want)
	}
	for _, top := range []string{"0", "1001", "x"} {
		wantLegacyError(t, th.callQuery(t, "/devices", "&top="+top), iothub.CodeArgumentInvalid)
	}
}
