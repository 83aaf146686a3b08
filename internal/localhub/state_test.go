package localhub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// TestStateDir: hub.json is written atomically (no temp files left), equals
// Info, and every file is 0600 in 0700 directories.
func TestStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "hub")
	th := startHub(t, localhub.Options{Dir: dir})
	info, err := localhub.ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info, th.Info()) {
		t.Errorf("hub.json %+v\nInfo()   %+v", info, th.Info())
	}
	if info.HostName != "localhost" || info.CAFile != filepath.Join(dir, "ca.pem") ||
		!strings.HasPrefix(info.MQTTAddr, "127.0.0.1:") || !strings.HasPrefix(info.HTTPSAddr, "127.0.0.1:") {
		t.Errorf("hub.json fields: %+v", info)
	}
	cs, err := iothub.ParseDeviceConnectionString(info.Devices["dev1"])
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(info.MQTTAddr, ":")
	if cs.HostName != "localhost" || cs.GatewayHostName != "localhost:"+port || cs.DeviceID != "dev1" {
		t.Errorf("device string fields: %+v", cs)
	}
	svc, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	_, hport, _ := strings.Cut(info.HTTPSAddr, ":")
	if svc.HostName != "localhost:"+hport || svc.SharedAccessKeyName != "iothubowner" {
		t.Errorf("service string fields: %+v", svc)
	}
	if _, err := th.AddDevice("dev2", "mod"); err != nil {
		t.Fatal(err)
	}
	checkModes(t, dir)
	info, _ = localhub.ReadInfo(dir)
	for _, id := range []string{"dev1", "dev2", "dev2/mod"} {
		if info.Devices[id] == "" {
			t.Errorf("hub.json lacks %s after AddDevice", id)
		}
	}
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	names := []string{}
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		names = append(names, rel)
		fi, err := e.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() { // the twins and identities folders
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", rel, fi.Mode().Perm(), want)
		}
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hub.json", "registry.json", "ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "identities/dev1.json"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("missing %s (have %v)", want, names)
		}
	}
}

// TestAddDeviceIdempotent: registering twice keeps the key.
func TestAddDeviceIdempotent(t *testing.T) {
	th := startHub(t, localhub.Options{})
	a, err := th.AddDevice("d", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := th.AddDevice("d", "")
	if err != nil || a != b || a == "" {
		t.Fatalf("second AddDevice: %q, %v; first %q", b, err, a)
	}
	for _, bad := range []string{"", "a b", "a/b", "a#b", strings.Repeat("x", 129)} {
		if _, err := th.AddDevice(bad, ""); err == nil {
			t.Errorf("AddDevice(%q) succeeded", bad)
		}
	}
}

// TestRestartReusesState: a second start on the same dir reuses keys and
// CA, may reuse the same ports, and devices keep working with old strings.
func TestRestartReusesState(t *testing.T) {
	dir := t.TempDir()
	first := startHub(t, localhub.Options{Dir: dir})
	info1 := first.Info()
	ca1, _ := os.ReadFile(info1.CAFile)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := startHub(t, localhub.Options{Dir: dir, MQTTAddr: info1.MQTTAddr, HTTPSAddr: info1.HTTPSAddr})
	info2 := second.Info()
	ca2, _ := os.ReadFile(info2.CAFile)
	if !bytes.Equal(ca1, ca2) {
		t.Error("CA changed across restarts")
	}
	if !reflect.DeepEqual(info1, info2) {
		t.Errorf("hub.json changed across restarts on the same ports:\n%+v\n%+v", info1, info2)
	}
	second.pool = first.pool // trust only the first start's CA
	d := second.mustConnect(t, "dev1")
	d.subscribe(t, 0, echo)
	if r := second.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"}); r.status != 200 {
		t.Fatalf("after restart: %d %s", r.status, r.body)
	}
}

// TestNonLoopbackRefused: exposing the hub must be asked for.
func TestNonLoopbackRefused(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		_, err := localhub.Start(context.Background(), localhub.Options{Dir: t.TempDir(), MQTTAddr: addr, HTTPSAddr: "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("MQTTAddr %q: %v, want a loopback refusal", addr, err)
		}
	}
	h, err := localhub.Start(context.Background(), localhub.Options{Dir: t.TempDir(), MQTTAddr: "0.0.0.0:0", HTTPSAddr: "127.0.0.1:0", AllowNonLoopback: true})
	if err != nil {
		t.Fatalf("AllowNonLoopback: %v", err)
	}
	h.Close()
}

// TestPortInUse: a bind failure is reported and releases what was bound.
func TestPortInUse(t *testing.T) {
	th := startHub(t, localhub.Options{})
	_, err := localhub.Start(context.Background(), localhub.Options{Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: th.info.HTTPSAddr})
	if err == nil {
		t.Fatal("second hub on a used port started")
	}
}

func TestReadInfoMissing(t *testing.T) {
	if _, err := localhub.ReadInfo(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadInfo on an empty dir: %v, want fs.ErrNotExist", err)
	}
}

func TestDefaultDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"XDG", map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"}, "/x/methodd/hub"},
		{"HOME", map[string]string{"HOME": "/h"}, "/h/.local/state/methodd/hub"},
		{"neither", map[string]string{}, ""},
	}
	for _, tc := range cases {
		got, err := localhub.DefaultDir(env(tc.env))
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestDefaultDevice: registered only into an empty registry.
func TestDefaultDevice(t *testing.T) {
	dir := t.TempDir()
	first := startHub(t, localhub.Options{Dir: dir, Devices: []string{}, DefaultDevice: "dev-device"})
	if got := sortedIDs(first.Info().Devices); got != "dev-device" {
		t.Fatalf("devices %q, want dev-device", got)
	}
	first.Close()
	second := startHub(t, localhub.Options{Dir: dir, Devices: []string{}, DefaultDevice: "another"})
	if got := sortedIDs(second.Info().Devices); got != "dev-device" {
		t.Fatalf("devices %q after restart, want the existing registry only", got)
	}
}

func sortedIDs(m map[string]string) string {
	ids := []string{}
	for k := range m {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// TestPunctuatedIdentity: an ID with the characters SDKs escape differently
// in a SAS resource ("*!'()") registers, logs in with our QueryEscape-signed
// token, and answers on its path-escaped REST route; IDs that would break
// topics, URLs or connection strings are refused.
func TestPunctuatedIdentity(t *testing.T) {
	const id = "dev-(1)*!'"
	th := startHub(t, localhub.Options{Devices: []string{id}})
	d := th.mustConnect(t, id)
	d.subscribe(t, 0, echo)
	r := th.invoke(t, id, "", iothub.MethodRequest{MethodName: "m", Payload: []byte(`{"id":"strict"}`)})
	if r.status != 200 || string(r.body) != `{"status":200,"payload":{"id":"strict"}}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	for _, bad := range []string{"a/b", "a#b", "a?b", "a%b", "a+b", "a;b", "a b", "a=b"} {
		if _, err := th.AddDevice(bad, ""); err == nil {
			t.Errorf("AddDevice(%q) succeeded, want refused", bad)
		}
	}
}

// readJSONFile decodes the JSON file at path into v.
func readJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// registryPolicies is registry.json as the hub writes it: the policies
// only, its identities in identities/.
type registryPolicies struct {
	Policies   map[string]string
	Identities map[string]json.RawMessage // none
}

// readPolicies reads dir/registry.json and checks that it holds no
// identities.
func readPolicies(t testing.TB, dir string) registryPolicies {
	t.Helper()
	var reg registryPolicies
	readJSONFile(t, filepath.Join(dir, "registry.json"), &reg)
	if reg.Identities != nil {
		t.Errorf("registry.json still holds identities: %v", reg.Identities)
	}
	return reg
}

// identityFile is an identity as its file in identities/ keeps it.
type identityFile struct {
	PrimaryKey, SecondaryKey string
	Status, StatusReason     string
	StatusUpdatedTime        string
	GenerationID             string
	ETag                     uint64
	ManagedBy                string
}

// identityPath is the file of identity clientID in state dir dir.
func identityPath(dir, clientID string) string {
	return filepath.Join(dir, "identities", url.PathEscape(clientID)+".json")
}

// readIdentityFile reads the file of identity clientID in state dir dir.
func readIdentityFile(t testing.TB, dir, clientID string) identityFile {
	t.Helper()
	var id identityFile
	readJSONFile(t, identityPath(dir, clientID), &id)
	return id
}

// oldRegistry is a registry.json as hubs wrote it before secondary keys:
// each identity's value is its key.
const oldRegistry = `{
  "policies": {
    "iothubowner": "b3duZXJrZXlvd25lcmtleW93bmVya2V5b3duZXJrZXk=",
    "service": "c2VydmljZWtleXNlcnZpY2VrZXlzZXJ2aWNla2V5c2U="
  },
  "identities": {
    "dev1": "ZGV2MWtleWRldjFrZXlkZXYxa2V5ZGV2MWtleWRldjE=",
    "edge": "ZWRnZWtleWVkZ2VrZXllZGdla2V5ZWRnZWtleWVkZ2U=",
    "edge/mod1": "bW9kMWtleW1vZDFrZXltb2Qxa2V5bW9kMWtleW1vZDE="
  }
}
`

// TestRegistryMigration: an old-format registry keeps its keys as primary
// keys, gains secondary keys and is rewritten in the new format (one file
// per identity, registry.json with the policies only); both keys sign
// connections.
func TestRegistryMigration(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registry.json"), []byte(oldRegistry), 0o600); err != nil {
		t.Fatal(err)
	}
	th := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	old := map[string]string{
		"dev1":      "ZGV2MWtleWRldjFrZXlkZXYxa2V5ZGV2MWtleWRldjE=",
		"edge":      "ZWRnZWtleWVkZ2VrZXllZGdla2V5ZWRnZWtleWVkZ2U=",
		"edge/mod1": "bW9kMWtleW1vZDFrZXltb2Qxa2V5bW9kMWtleW1vZDE=",
	}
	reg := readPolicies(t, dir)
	if reg.Policies["iothubowner"] != "b3duZXJrZXlvd25lcmtleW93bmVya2V5b3duZXJrZXk=" {
		t.Errorf("policies changed: %v", reg.Policies)
	}
	for id, key := range old {
		got := readIdentityFile(t, dir, id)
		if got.PrimaryKey != key || got.SecondaryKey == "" || got.SecondaryKey == key || got.GenerationID == "" {
			t.Errorf("migrated %s: %+v, want primary %s and a new secondary key", id, got, key)
		}
		if cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices[id]); cs.SharedAccessKey != key {
			t.Errorf("hub.json's %s key %q, want %q", id, cs.SharedAccessKey, key)
		}
		d, m := iothub.SplitClientID(id)
		for _, k := range []string{key, got.SecondaryKey} {
			dev, err := th.connect(t, th.keyCreds(t, d, m, k), nil)
			if err != nil {
				t.Fatalf("connect %s after migration: %v", id, err)
			}
			dev.c.Disconnect(0)
		}
	}
	if d := wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("edge", "mod1"), nil)); d.Authentication.SymmetricKey.PrimaryKey != old["edge/mod1"] {
		t.Errorf("registry API shows %+v", d.Authentication.SymmetricKey)
	}
	wantTwin(t, th.call(t, http.MethodGet, iothub.TwinPath("edge", "mod1"), nil))
}

// TestCorruptRegistry: a registry.json that cannot be read stops the start
// with an error naming it, and is left as it was.
func TestCorruptRegistry(t *testing.T) {
	cases := map[string]string{
		"not JSON":       `{"policies":`,
		"bad old key":    `{"policies":{},"identities":{"dev1":"not a key"}}`,
		"bad new key":    `{"policies":{},"identities":{"dev1":{"primaryKey":"","secondaryKey":""}}}`,
		"unknown status": `{"policies":{},"identities":{"dev1":{"primaryKey":"` + givenPrimary + `","secondaryKey":"` + givenSecondary + `","status":"paused"}}}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "registry.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := localhub.Start(context.Background(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
			if err == nil {
				h.Close()
				t.Fatal("started with a corrupt registry")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("registry.json rewritten to %s", b)
			}
		})
	}
}

// TestRegistryAndTwinsSurviveRestart: devices and modules created over
// REST, their keys and twins (tags, desired) are there after a restart.
func TestRegistryAndTwinsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	first := startHub(t, localhub.Options{Dir: dir})
	body := `{"deviceId":"r1","authentication":{"symmetricKey":{"primaryKey":"` + givenPrimary + `","secondaryKey":"` + givenSecondary + `"}}}`
	wantIdentity(t, first.call(t, http.MethodPut, iothub.DevicePath("r1", ""), []byte(body)))
	dev := wantIdentity(t, first.call(t, http.MethodPut, iothub.DevicePath("r1", ""), []byte(`{"deviceId":"r1","status":"enabled","statusReason":"ok"}`), "If-Match", `"*"`))
	mod := wantIdentity(t, first.call(t, http.MethodPut, iothub.DevicePath("r1", "m1"), []byte(`{}`)))
	wantTwin(t, first.call(t, http.MethodPatch, iothub.TwinPath("r1", ""), []byte(`{"tags":{"site":"x"},"properties":{"desired":{"rate":7}}}`), "If-Match", `"*"`))
	wantTwin(t, first.call(t, http.MethodPatch, iothub.TwinPath("r1", "m1"), []byte(`{"tags":{"role":"m"}}`), "If-Match", `"*"`))
	twin := first.call(t, http.MethodGet, iothub.TwinPath("r1", ""), nil)
	mtwin := first.call(t, http.MethodGet, iothub.TwinPath("r1", "m1"), nil)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := startHub(t, localhub.Options{Dir: dir})
	second.pool = first.pool
	if got := wantIdentity(t, second.call(t, http.MethodGet, iothub.DevicePath("r1", ""), nil)); !reflect.DeepEqual(got, dev) {
		t.Errorf("device after restart %+v\nwant %+v", got, dev)
	}
	if got := wantIdentity(t, second.call(t, http.MethodGet, iothub.DevicePath("r1", "m1"), nil)); !reflect.DeepEqual(got, mod) {
		t.Errorf("module after restart %+v\nwant %+v", got, mod)
	}
	for path, want := range map[string]response{iothub.TwinPath("r1", ""): twin, iothub.TwinPath("r1", "m1"): mtwin} {
		got := second.call(t, http.MethodGet, path, nil)
		if string(got.body) != string(want.body) || got.header.Get("ETag") != want.header.Get("ETag") {
			t.Errorf("twin %s after restart:\n%s\nwant\n%s", path, got.body, want.body)
		}
	}
	c, err := second.connect(t, second.keyCreds(t, "r1", "", givenSecondary), nil)
	if err != nil {
		t.Fatalf("connect with the given key after restart: %v", err)
	}
	c.c.Disconnect(0)
	second.mustConnect(t, "r1/m1")
}
