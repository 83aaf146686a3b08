package localhub_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// Policy keys of the literal registries below.
const (
	ownerKey   = "b3duZXJrZXlvd25lcmtleW93bmVya2V5b3duZXJrZXk="
	serviceKey = "c2VydmljZWtleXNlcnZpY2VrZXlzZXJ2aWNla2V5c2U="
)

// structRegistry is a registry.json as hubs wrote it before identities had
// files of their own: identities as objects, inline.
const structRegistry = `{
  "policies": {
    "iothubowner": "` + ownerKey + `",
    "service": "` + serviceKey + `"
  },
  "identities": {
    "dev1": {
      "primaryKey": "` + givenPrimary + `",
      "secondaryKey": "` + givenSecondary + `",
      "status": "disabled",
      "statusReason": "maintenance",
      "statusUpdatedTime": "2025-01-02T03:04:05Z",
      "generationId": "638512345678901234",
      "etag": 3
    },
    "dev1/mod(1)": {
      "primaryKey": "bW9kMWtleW1vZDFrZXltb2Qxa2V5bW9kMWtleW1vZDE=",
      "secondaryKey": "` + givenSecondary + `",
      "generationId": "638512345678901235",
      "etag": 1,
      "managedBy": "me"
    }
  }
}
`

// writeState writes files (relative paths) into a new state dir (0700,
// as the hub creates it).
func writeState(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRegistryMigrationStruct: a registry.json of identity objects is
// migrated to one file per identity, every field kept, and registry.json
// keeps the policies only; a restart reads the same registry.
func TestRegistryMigrationStruct(t *testing.T) {
	dir := writeState(t, map[string]string{"registry.json": structRegistry})
	th := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	if reg := readPolicies(t, dir); !reflect.DeepEqual(reg.Policies, map[string]string{"iothubowner": ownerKey, "service": serviceKey}) {
		t.Errorf("policies %v", reg.Policies)
	}
	want := map[string]identityFile{
		"dev1": {PrimaryKey: givenPrimary, SecondaryKey: givenSecondary, Status: "disabled", StatusReason: "maintenance",
			StatusUpdatedTime: "2025-01-02T03:04:05Z", GenerationID: "638512345678901234", ETag: 3},
		"dev1/mod(1)": {PrimaryKey: "bW9kMWtleW1vZDFrZXltb2Qxa2V5bW9kMWtleW1vZDE=", SecondaryKey: givenSecondary,
			GenerationID: "638512345678901235", ETag: 1, ManagedBy: "me"},
	}
	for id, w := range want {
		if got := readIdentityFile(t, dir, id); got != w {
			t.Errorf("%s file %+v\nwant %+v", id, got, w)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "identities", "dev1%2Fmod%281%29.json")); err != nil {
		t.Errorf("module file not named by the path-escaped client id: %v", err)
	}
	checkModes(t, dir)
	dev := wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("dev1", ""), nil))
	if dev.Status != "disabled" || dev.StatusReason == nil || *dev.StatusReason != "maintenance" ||
		dev.ETag != base64.StdEncoding.EncodeToString([]byte("3")) || dev.GenerationID != "638512345678901234" ||
		dev.StatusUpdatedTime != "2025-01-02T03:04:05.0000000Z" || dev.Authentication.SymmetricKey.PrimaryKey != givenPrimary {
		t.Errorf("migrated device %+v", dev)
	}
	mod := wantIdentity(t, th.call(t, http.MethodGet, iothub.DevicePath("dev1", "mod(1)"), nil))
	if mod.ManagedBy == nil || *mod.ManagedBy != "me" || mod.ETag != base64.StdEncoding.EncodeToString([]byte("1")) {
		t.Errorf("migrated module %+v", mod)
	}
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	second := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	if got := wantIdentity(t, second.call(t, http.MethodGet, iothub.DevicePath("dev1", ""), nil)); !reflect.DeepEqual(got, dev) {
		t.Errorf("after restart %+v\nwant %+v", got, dev)
	}
}

// TestRegistryMigrationOldest: the oldest format's keys (migrated by
// TestRegistryMigration) get secondary keys once: a restart keeps them.
func TestRegistryMigrationOldest(t *testing.T) {
	dir := writeState(t, map[string]string{"registry.json": oldRegistry})
	first := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	before := map[string]identityFile{}
	for _, id := range []string{"dev1", "edge", "edge/mod1"} {
		before[id] = readIdentityFile(t, dir, id)
	}
	readPolicies(t, dir)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	if got := sortedIDs(second.Info().Devices); got != "dev1,edge,edge/mod1" {
		t.Errorf("identities after restart %q", got)
	}
	for id, want := range before {
		if got := readIdentityFile(t, dir, id); got != want {
			t.Errorf("%s after restart %+v\nwant %+v", id, got, want)
		}
	}
}

// TestRegistryMigrationInterrupted: a migration cut short (identities
// both in registry.json and in their files) completes, and the files win.
func TestRegistryMigrationInterrupted(t *testing.T) {
	file := `{"primaryKey":"` + givenSecondary + `","secondaryKey":"` + givenPrimary + `","status":"enabled","generationId":"1","etag":7}`
	dir := writeState(t, map[string]string{"registry.json": structRegistry, "identities/dev1.json": file})
	th := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	readPolicies(t, dir)
	if got := readIdentityFile(t, dir, "dev1"); got.PrimaryKey != givenSecondary || got.ETag != 7 {
		t.Errorf("dev1 %+v, want the identity file's", got)
	}
	if got := readIdentityFile(t, dir, "dev1/mod(1)"); got.ManagedBy != "me" {
		t.Errorf("dev1/mod(1) %+v, want registry.json's", got)
	}
	if cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"]); cs.SharedAccessKey != givenSecondary {
		t.Errorf("dev1 key %q, want the identity file's", cs.SharedAccessKey)
	}
}

// TestRegistryIdentityFiles: a create writes the identity's file, an
// update rewrites it, a delete removes it (with a device, its modules').
func TestRegistryIdentityFiles(t *testing.T) {
	th := startHub(t, localhub.Options{Dir: filepath.Join(t.TempDir(), "hub")})
	dir := th.opts.Dir
	wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("f1", ""), []byte(`{}`)))
	wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("f1", "m1"), []byte(`{}`)))
	wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("f1", "m2"), []byte(`{}`)))
	wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("f1", ""), []byte(`{"status":"disabled"}`), "If-Match", `"*"`))
	if got := readIdentityFile(t, dir, "f1"); got.Status != "disabled" || got.ETag != 1 {
		t.Errorf("f1 after update %+v", got)
	}
	if got := readIdentityFile(t, dir, "f1/m1"); got.PrimaryKey == "" {
		t.Errorf("f1/m1 %+v", got)
	}
	readPolicies(t, dir)
	checkModes(t, dir)
	if r := th.call(t, http.MethodDelete, iothub.DevicePath("f1", "m1"), nil); r.status != http.StatusNoContent {
		t.Fatalf("delete module: %d %s", r.status, r.body)
	}
	if _, err := os.Stat(identityPath(dir, "f1/m1")); !os.IsNotExist(err) {
		t.Errorf("deleted module's file: %v", err)
	}
	if r := th.call(t, http.MethodDelete, iothub.DevicePath("f1", ""), nil); r.status != http.StatusNoContent {
		t.Fatalf("delete device: %d %s", r.status, r.body)
	}
	for _, id := range []string{"f1", "f1/m2"} {
		if _, err := os.Stat(identityPath(dir, id)); !os.IsNotExist(err) {
			t.Errorf("deleted %s's file: %v", id, err)
		}
	}
	if _, err := os.Stat(identityPath(dir, "dev1")); err != nil {
		t.Errorf("dev1's file: %v", err)
	}
}

// TestCorruptIdentityFile: an identity file that cannot be read stops the
// start with an error naming it, and is left as it was.
func TestCorruptIdentityFile(t *testing.T) {
	cases := map[string]string{
		"not JSON":       `{"primaryKey":`,
		"bad key":        `{"primaryKey":"x","secondaryKey":"y"}`,
		"unknown status": `{"primaryKey":"` + givenPrimary + `","secondaryKey":"` + givenSecondary + `","status":"paused"}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeState(t, map[string]string{"identities/dev1%2Fm.json": content})
			path := identityPath(dir, "dev1/m")
			h, err := localhub.Start(context.Background(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
			if err == nil {
				h.Close()
				t.Fatal("started with a corrupt identity file")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("identity file rewritten to %s", b)
			}
		})
	}
}

// TestOrphanModuleFile: a module file whose device has none (a device
// delete cut short) is removed at start, with a warning.
func TestOrphanModuleFile(t *testing.T) {
	mod := `{"primaryKey":"` + givenPrimary + `","secondaryKey":"` + givenSecondary + `","generationId":"1","etag":0}`
	dir := writeState(t, map[string]string{"identities/gone%2Fm.json": mod, "identities/kept%2Fm.json": mod, "identities/kept.json": mod})
	th := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	if _, err := os.Stat(identityPath(dir, "gone/m")); !os.IsNotExist(err) {
		t.Errorf("orphan module file: %v, want removed", err)
	}
	if got := sortedIDs(th.Info().Devices); got != "kept,kept/m" {
		t.Errorf("identities %q, want kept,kept/m", got)
	}
	if logs := th.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "gone/m") {
		t.Errorf("no warning naming gone/m in:\n%s", logs)
	}
	wantLegacyError(t, th.call(t, http.MethodGet, iothub.DevicePath("gone", "m"), nil), iothub.CodeDeviceNotFound)
}

// TestInfoLag: hub.json catches up with a burst of registry REST changes
// while Info is current at once, and Close writes the last state.
func TestInfoLag(t *testing.T) {
	th := startHub(t, localhub.Options{})
	dir := th.opts.Dir
	has := func(id string) bool {
		info, err := localhub.ReadInfo(dir)
		if err != nil {
			t.Fatal(err)
		}
		return info.Devices[id] != ""
	}
	for i := range 20 { // a burst: written together, at most ~twice a second
		id := "lag" + string(rune('a'+i))
		wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath(id, ""), []byte(`{}`)))
		if th.Info().Devices[id] == "" {
			t.Errorf("Info lacks %s right after its create", id)
		}
	}
	// How long the write lags is a matter for a benchmark, not a timed
	// assertion: here hub.json must catch up.
	testkit.Eventually(t, waitFor, "hub.json to list the burst's last device", func() bool { return has("lagt") })
	if r := th.call(t, http.MethodDelete, iothub.DevicePath("laga", ""), nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantIdentity(t, th.call(t, http.MethodPut, iothub.DevicePath("last", ""), []byte(`{}`)))
	th.http.CloseIdleConnections()
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := localhub.ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Devices["last"] == "" || info.Devices["laga"] != "" || info.Devices["lagb"] == "" {
		t.Errorf("hub.json after Close: %q, want last and lagb, not laga", sortedIDs(info.Devices))
	}
}

// TestRegistryConcurrentChanges: creates and deletes of devices and
// modules racing on the same devices leave disk and memory alike: a
// restart reads the registry the hub had, and no module outlives its
// device.
func TestRegistryConcurrentChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub")
	th := startHub(t, localhub.Options{Dir: dir})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 12 {
				dev := fmt.Sprintf("c%d", (w+i)%4) // 8 workers on 4 devices
				switch i % 3 {
				case 0:
					th.call(t, http.MethodPut, iothub.DevicePath(dev, ""), []byte(`{}`))
				case 1:
					th.call(t, http.MethodPut, iothub.DevicePath(dev, fmt.Sprintf("m%d", w)), []byte(`{}`))
				case 2:
					if w%2 == 0 {
						th.call(t, http.MethodDelete, iothub.DevicePath(dev, ""), nil)
					}
				}
			}
		})
	}
	wg.Wait()
	before := sortedIDs(th.Info().Devices)
	th.http.CloseIdleConnections() // else a connection dialed but never used holds up Close's HTTP shutdown for 5 s
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := localhub.ReadInfo(dir); err != nil || sortedIDs(info.Devices) != before {
		t.Errorf("hub.json after Close %q (%v), want %q", sortedIDs(info.Devices), err, before)
	}
	second := startHub(t, localhub.Options{Dir: dir, Devices: []string{}})
	if got := sortedIDs(second.Info().Devices); got != before {
		t.Errorf("after restart %q\nbefore        %q", got, before)
	}
	if logs := second.logs.String(); strings.Contains(logs, "level=WARN") {
		t.Errorf("orphans found at restart:\n%s", logs)
	}
	for id := range second.Info().Devices {
		if d, m := iothub.SplitClientID(id); m != "" && second.Info().Devices[d] == "" {
			t.Errorf("module %s without its device", id)
		}
	}
}
