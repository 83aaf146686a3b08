package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/methodd/methodd/iothub"
)

// deviceDoc is a registry answer whose keys are recognisable, so leak
// checks can look for them.
const (
	leakPrimary   = "UFJJTUFSWS1TRUNSRVQtMDEyMzQ1Njc4OWFiY2RlZg=="
	leakSecondary = "U0VDT05EQVJZLVNFQ1JFVC0wMTIzNDU2Nzg5YWJjZA=="
	deviceDoc     = `{"deviceId":"sim 1","etag":"MQ==","status":"enabled","connectionState":"Disconnected",` +
		`"authentication":{"type":"sas","symmetricKey":{"primaryKey":"` + leakPrimary + `","secondaryKey":"` + leakSecondary + `"}}}`
)

func TestCreateDeviceSendsTheProtocolRequest(t *testing.T) {
	s := newTwinServer(t, answer{body: deviceDoc})
	d, err := s.client(t).CreateDevice(context.Background(), "sim 1")
	if err != nil {
		t.Fatal(err)
	}
	want := Device{ID: "sim 1", Status: "enabled", ETag: "MQ==", AuthType: "sas", PrimaryKey: leakPrimary, SecondaryKey: leakSecondary, Created: true}
	if d != want {
		t.Errorf("got %#v (keys %v), want %#v", d, d.PrimaryKey == leakPrimary, want)
	}
	rec := s.recorded()
	if len(rec) != 1 {
		t.Fatalf("got %d requests, want 1", len(rec))
	}
	r := rec[0]
	if r.Method != http.MethodPut || r.EscapedPath != "/devices/sim%201" || r.Query != iothub.MethodsQuery {
		t.Errorf("got %s %s?%s, want PUT /devices/sim%%201?%s", r.Method, r.EscapedPath, r.Query, iothub.MethodsQuery)
	}
	if im := r.Header.Get("If-Match"); im != "" {
		t.Errorf("create sent If-Match %q; want none (an If-Match would update an existing device)", im)
	}
	var body struct {
		DeviceID       string `json:"deviceId"`
		Authentication struct {
			Type         string                     `json:"type"`
			SymmetricKey map[string]json.RawMessage `json:"symmetricKey"`
		} `json:"authentication"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.DeviceID != "sim 1" || body.Authentication.Type != "sas" ||
		string(body.Authentication.SymmetricKey["primaryKey"]) != "null" {
		t.Errorf("body %s: want deviceId, authentication type sas and null keys (the hub generates them)", r.Body)
	}
	checkServiceHeaders(t, r.Header, s.hostName())
}

func TestCreateDeviceReadsAnExistingOne(t *testing.T) {
	s := newTwinServer(t, answer{code: iothub.CodeDeviceAlreadyExists}, answer{body: deviceDoc})
	d, err := s.client(t).CreateDevice(context.Background(), "sim 1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Created || d.PrimaryKey != leakPrimary {
		t.Errorf("got Created %v, primary key read %v; want false, true", d.Created, d.PrimaryKey == leakPrimary)
	}
	rec := s.recorded()
	if len(rec) != 2 || rec[0].Method != http.MethodPut || rec[1].Method != http.MethodGet || rec[1].EscapedPath != "/devices/sim%201" {
		t.Fatalf("got %d requests %v, want PUT then GET /devices/sim%%201", len(rec), rec)
	}
}

func TestRegistryErrors(t *testing.T) {
	cases := []struct {
		name     string
		script   []answer
		call     func(*Client) error
		wantCode int
		wantReqs int
		wantErr  error
	}{
		{"unauthorized", []answer{{code: iothub.CodeUnauthorized}},
			func(c *Client) error { _, err := c.CreateDevice(context.Background(), "d"); return err }, iothub.CodeUnauthorized, 1, nil},
		{"throttled then created", []answer{{code: iothub.CodeThrottled}, {body: deviceDoc}},
			func(c *Client) error { _, err := c.CreateDevice(context.Background(), "d"); return err }, 0, 2, nil},
		{"not found", []answer{{code: iothub.CodeDeviceNotFound}},
			func(c *Client) error { _, err := c.GetDevice(context.Background(), "d"); return err }, iothub.CodeDeviceNotFound, 1, nil},
		{"malformed", []answer{{body: `{"etag":"x","authentication":{"symmetricKey":{"primaryKey":"` + leakPrimary + `"}}}`}},
			func(c *Client) error { _, err := c.GetDevice(context.Background(), "d"); return err }, 0, 1, ErrMalformedDevice},
		{"empty id", nil,
			func(c *Client) error { _, err := c.CreateDevice(context.Background(), ""); return err }, 0, 0, ErrTarget},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := tc.script
			if len(script) == 0 {
				script = []answer{{body: deviceDoc}}
			}
			s := newTwinServer(t, script...)
			err := tc.call(s.client(t))
			var he *iothub.Error
			switch {
			case tc.wantCode != 0 && (!errors.As(err, &he) || he.Code != tc.wantCode):
				t.Errorf("got %v, want a *iothub.Error %d", err, tc.wantCode)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("got %v, want %v", err, tc.wantErr)
			case tc.wantCode == 0 && tc.wantErr == nil && err != nil:
				t.Errorf("got %v, want success", err)
			}
			if n := len(s.recorded()); n != tc.wantReqs {
				t.Errorf("got %d requests, want %d", n, tc.wantReqs)
			}
			if err != nil && (strings.Contains(err.Error(), leakPrimary) || strings.Contains(err.Error(), testKey)) {
				t.Errorf("error %q holds a key", err)
			}
		})
	}
}

// TestDeviceNeverShowsItsKeys formats and logs a Device every usual way.
func TestDeviceNeverShowsItsKeys(t *testing.T) {
	d := Device{ID: "sim-1", Status: "enabled", AuthType: "sas", PrimaryKey: leakPrimary, SecondaryKey: leakSecondary}
	var logged bytes.Buffer
	const key = "device"
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", key, d)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", key, d)
	for _, s := range []string{fmt.Sprint(d), fmt.Sprintf("%v %+v %#v %s %q", d, d, d, d, d), fmt.Sprintf("%v", &d), logged.String()} {
		if !strings.Contains(s, "sim-1") || strings.Contains(s, leakPrimary) || strings.Contains(s, leakSecondary) {
			t.Errorf("%q: want the id and no key", s)
		}
	}
}

// TestRegistryOnLocalHub creates, re-creates, reads and deletes a device on
// the real local hub.
func TestRegistryOnLocalHub(t *testing.T) {
	info, c := localHubClient(t, "")
	ctx := context.Background()
	d, err := c.CreateDevice(ctx, "sim-00001")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Created || d.ID != "sim-00001" || d.Status != "enabled" || d.AuthType != "sas" || d.PrimaryKey == "" || d.SecondaryKey == "" {
		t.Fatalf("create: got %#v, keys set %v; want a created, enabled sas device with keys", d, d.PrimaryKey != "")
	}
	again, err := c.CreateDevice(ctx, "sim-00001")
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.PrimaryKey != d.PrimaryKey || again.SecondaryKey != d.SecondaryKey {
		t.Errorf("create again: got Created %v, same keys %v; want false, true", again.Created, again.PrimaryKey == d.PrimaryKey)
	}
	got, err := c.GetDevice(ctx, "sim-00001")
	if err != nil {
		t.Fatal(err)
	}
	if got.PrimaryKey != d.PrimaryKey || got.ETag != d.ETag {
		t.Errorf("get: got etag %q, same key %v; want %q, true", got.ETag, got.PrimaryKey == d.PrimaryKey, d.ETag)
	}
	// The key is the one the hub authenticates the device with.
	cs, err := iothub.ParseDeviceConnectionString("HostName=" + info.HostName + ";DeviceId=sim-00001;SharedAccessKey=" + d.PrimaryKey)
	if err != nil {
		t.Fatalf("the created key does not make a connection string: %v", err)
	}
	if cs.DeviceID != "sim-00001" {
		t.Errorf("connection string device %q", cs.DeviceID)
	}
	if err := c.DeleteDevice(ctx, "sim-00001"); err != nil {
		t.Fatal(err)
	}
	var he *iothub.Error
	if _, err := c.GetDevice(ctx, "sim-00001"); !errors.As(err, &he) || he.Code != iothub.CodeDeviceNotFound {
		t.Errorf("get after delete: got %v, want 404001", err)
	}
	if err := c.DeleteDevice(ctx, "sim-00001"); !errors.As(err, &he) || he.Code != iothub.CodeDeviceNotFound {
		t.Errorf("delete again: got %v, want 404001", err)
	}
}
