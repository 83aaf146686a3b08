package localhub_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
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
// Info, and every file is 0600 in a 0700 directory.
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
	entries, _ := os.ReadDir(dir)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	for _, want := range []string{"hub.json", "registry.json", "ca.pem", "ca-key.pem", "server.pem", "server-key.pem"} {
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
