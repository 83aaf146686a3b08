package localhub_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// twinMessage is one PUBLISH a device got on a twin topic.
type twinMessage struct {
	topic   string
	payload string
}

// twinClient subscribes d to twin responses (and, with desired, to desired
// changes) and returns what arrives there, in order.
func twinClient(t testing.TB, d *device, desired bool) <-chan twinMessage {
	t.Helper()
	got := make(chan twinMessage, 64)
	route := func(_ paho.Client, m paho.Message) { got <- twinMessage{m.Topic(), string(m.Payload())} }
	d.c.AddRoute(iothub.TwinResponseSubscription, route)
	d.c.AddRoute(iothub.TwinDesiredSubscription, route)
	filters := []string{iothub.TwinResponseSubscription}
	if desired {
		filters = append(filters, iothub.TwinDesiredSubscription)
	}
	for _, f := range filters {
		if tok := d.c.Subscribe(f, 0, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	return got
}

// next returns the next twin message, failing after waitFor.
func next(t testing.TB, got <-chan twinMessage) twinMessage {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(waitFor):
		t.Fatal("no twin message from the hub")
		return twinMessage{}
	}
}

// publish sends a twin request at QoS 0 as the Node SDK does.
func publish(t testing.TB, d *device, topic, payload string) {
	t.Helper()
	if tok := d.c.Publish(topic, 0, false, payload); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestTwinVectors replays the Node SDK's capture (fleet reference §7.2,
// TV-T1 to TV-T3) byte for byte.
func TestTwinVectors(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	got := twinClient(t, d, true)

	publish(t, d, "$iothub/twin/GET/?$rid=02e936c1-aca4-4fca-adf1-a7cc926352e4", " ")
	want := twinMessage{"$iothub/twin/res/200/?$rid=02e936c1-aca4-4fca-adf1-a7cc926352e4", `{"desired":{"$version":1},"reported":{"$version":1}}`}
	if m := next(t, got); m != want {
		t.Fatalf("TV-T1: got %+v, want %+v", m, want)
	}
	publish(t, d, "$iothub/twin/PATCH/properties/reported/?$rid=6c5fba62-3f1c-44fa-8e0a-c3f745348278", `{"firmware":{"version":"1.2.3"},"battery":55,"old":null}`)
	want = twinMessage{"$iothub/twin/res/204/?$rid=6c5fba62-3f1c-44fa-8e0a-c3f745348278&$version=2", ""}
	if m := next(t, got); m != want {
		t.Fatalf("TV-T2: got %+v, want %+v", m, want)
	}
	if _, err := th.UpdateTwin("dev1", []byte(`{"properties":{"desired":{"telemetryInterval":30,"route":null}}}`), false, ""); err != nil {
		t.Fatal(err)
	}
	want = twinMessage{"$iothub/twin/PATCH/properties/desired/?$version=2", `{"telemetryInterval":30,"route":null,"$version":2}`}
	if m := next(t, got); m != want {
		t.Fatalf("TV-T3: got %+v, want %+v", m, want)
	}
	publish(t, d, iothub.TwinGetTopic("3"), "")
	want = twinMessage{"$iothub/twin/res/200/?$rid=3", `{"desired":{"telemetryInterval":30,"$version":2},"reported":{"battery":55,"firmware":{"version":"1.2.3"},"$version":2}}`}
	if m := next(t, got); m != want {
		t.Fatalf("GET after both writes: got %+v, want %+v", m, want)
	}
}

// TestTwinErrorsKeepTheConnection: a reported patch the twin rules refuse
// gets its status with a JSON body carrying a non-zero errorCode (the Node
// SDK reads an empty error body as success, §1.6), nothing is applied, and
// the device stays connected.
func TestTwinErrorsKeepTheConnection(t *testing.T) {
	cases := []struct{ name, patch string }{
		{"malformed JSON", `{"a":`},
		{"not an object", `[1,2]`},
		{"key with a dot", `{"a.b":1}`},
		{"key with a dollar", `{"$a":1}`},
		{"too deep", strings.Repeat(`{"k":`, 12) + "1" + strings.Repeat("}", 12)},
		{"integer out of range", `{"n":4503599627370496}`},
	}
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	got := twinClient(t, d, false)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rid := "e" + string(rune('a'+i))
			publish(t, d, iothub.TwinReportedTopic(rid), tc.patch)
			m := next(t, got)
			status, gotRID, version, err := iothub.ParseTwinResponseTopic(m.topic)
			if err != nil || status != 400 || gotRID != rid || version != 0 {
				t.Fatalf("got %q (%v), want a 400 for $rid %s without $version", m.topic, err, rid)
			}
			var body iothub.TwinError
			if err := json.Unmarshal([]byte(m.payload), &body); err != nil || body.ErrorCode != iothub.CodeArgumentInvalid || body.Message == "" {
				t.Fatalf("body %s (%v): want errorCode 400004 and a message", m.payload, err)
			}
		})
	}
	publish(t, d, iothub.TwinGetTopic("after"), " ")
	want := twinMessage{"$iothub/twin/res/200/?$rid=after", `{"desired":{"$version":1},"reported":{"$version":1}}`}
	if m := next(t, got); m != want {
		t.Fatalf("after the refusals: got %+v, want %+v (connected, nothing applied)", m, want)
	}
}

// TestTwinAnswersOnlySubscribers: a twin request from a connection without
// the response subscription gets no answer (it could not receive one from
// the real hub), while the next one, once subscribed, does. Answers on one
// connection are written in order, so the first arrives first if at all.
func TestTwinAnswersOnlySubscribers(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	got := make(chan twinMessage, 8)
	d.c.AddRoute("$iothub/twin/#", func(_ paho.Client, m paho.Message) { got <- twinMessage{m.Topic(), string(m.Payload())} })
	publish(t, d, iothub.TwinGetTopic("unsubscribed"), " ")
	if tok := d.c.Subscribe(iothub.TwinResponseSubscription, 0, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	publish(t, d, iothub.TwinGetTopic("subscribed"), " ")
	if m := next(t, got); !strings.HasSuffix(m.topic, "$rid=subscribed") {
		t.Fatalf("first answer on %q, want the subscribed request's", m.topic)
	}
}

// TestModuleTwinIsItsOwn: a module's twin is not its device's.
func TestModuleTwinIsItsOwn(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev1/mod1"}})
	mod := th.mustConnect(t, "dev1/mod1")
	got := twinClient(t, mod, false)
	publish(t, mod, iothub.TwinReportedTopic("1"), `{"role":"module"}`)
	if m := next(t, got); m.topic != "$iothub/twin/res/204/?$rid=1&$version=2" {
		t.Fatalf("got %q", m.topic)
	}
	dev := th.mustConnect(t, "dev1")
	devGot := twinClient(t, dev, false)
	publish(t, dev, iothub.TwinGetTopic("2"), " ")
	if m := next(t, devGot); m.payload != `{"desired":{"$version":1},"reported":{"$version":1}}` {
		t.Fatalf("device twin %s, want the module's write not in it", m.payload)
	}
}

// TestTwinAndSessionSurviveRestart: reported properties and a persistent
// session's twin subscriptions outlive the hub. After the restart the
// device reconnects with clean session 0 and does not subscribe again, as
// the Node SDK does (§1.6 item 4), and still gets its answers.
func TestTwinAndSessionSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	th := startHub(t, localhub.Options{Dir: dir})
	d := th.mustConnect(t, "dev1")
	got := twinClient(t, d, true)
	publish(t, d, iothub.TwinReportedTopic("1"), `{"kept":true}`)
	next(t, got)
	d.c.Disconnect(100)
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}

	th2 := startHub(t, localhub.Options{Dir: dir})
	d2, err := th2.connect(t, th2.creds(t, "dev1", time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	got2 := make(chan twinMessage, 8)
	route := func(_ paho.Client, m paho.Message) { got2 <- twinMessage{m.Topic(), string(m.Payload())} }
	d2.c.AddRoute("$iothub/twin/#", route)
	publish(t, d2, iothub.TwinGetTopic("2"), " ")
	want := twinMessage{"$iothub/twin/res/200/?$rid=2", `{"desired":{"$version":1},"reported":{"kept":true,"$version":2}}`}
	if m := next(t, got2); m != want {
		t.Fatalf("after restart: got %+v, want %+v", m, want)
	}
	if _, err := th2.UpdateTwin("dev1", []byte(`{"properties":{"desired":{"x":1}}}`), false, "*"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, got2); m.topic != "$iothub/twin/PATCH/properties/desired/?$version=2" {
		t.Fatalf("desired change after restart on %q", m.topic)
	}
	if !d2.present {
		t.Error("CONNACK after restart: session present 0, want 1 (the session was restored)")
	}
}

// TestCorruptTwinFileRefusesStart: a damaged twin file stops the hub with
// an error naming it; it is never silently replaced by a new twin.
func TestCorruptTwinFileRefusesStart(t *testing.T) {
	dir := t.TempDir()
	th := startHub(t, localhub.Options{Dir: dir})
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "twins", "dev1.json")
	if err := os.WriteFile(path, []byte(`{"format":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := localhub.Start(t.Context(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start: %v, want an error naming %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"format":` {
		t.Fatalf("the corrupt file was changed to %q", b)
	}
}

// TestStaleEtagRefused: a write with an etag other than the twin's is
// 412001 and changes nothing; "*" and the current etag are accepted.
func TestStaleEtagRefused(t *testing.T) {
	th := startHub(t, localhub.Options{})
	if _, err := th.UpdateTwin("dev1", []byte(`{"tags":{"a":1}}`), false, "AAAAAAAAAAE="); err != nil {
		t.Fatalf("current etag: %v", err)
	}
	_, err := th.UpdateTwin("dev1", []byte(`{"tags":{"a":2}}`), false, "AAAAAAAAAAE=")
	var he *iothub.Error
	if !errors.As(err, &he) || he.Code != iothub.CodePreconditionFailed {
		t.Fatalf("stale etag: %v, want 412001", err)
	}
	if _, err := th.UpdateTwin("dev1", []byte(`{"tags":{"a":3}}`), false, "*"); err != nil {
		t.Fatalf("etag *: %v", err)
	}
}

// TestDeletedIdentityForgetsSavedSession: a device deleted after a hub
// restart, before it reconnected, leaves no saved subscriptions for a new
// device of the same id to inherit.
func TestDeletedIdentityForgetsSavedSession(t *testing.T) {
	dir := t.TempDir()
	th := startHub(t, localhub.Options{Dir: dir})
	d := th.mustConnect(t, "dev1")
	twinClient(t, d, true)
	d.c.Disconnect(100)
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	th2 := startHub(t, localhub.Options{Dir: dir})
	if r := th2.request(t, "DELETE", "/devices/dev1?api-version=2021-04-12", th2.serviceToken(t), nil); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if _, err := th2.AddDevice("dev1", ""); err != nil {
		t.Fatal(err)
	}
	d2, err := th2.connect(t, th2.creds(t, "dev1", time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d2.present {
		t.Fatal("the re-created device got the deleted one's session (session present 1)")
	}
}

// TestCorruptSessionFileRefusesStart: a damaged saved session stops the
// hub with an error naming its file, which is left as it was.
func TestCorruptSessionFileRefusesStart(t *testing.T) {
	dir := t.TempDir()
	th := startHub(t, localhub.Options{Dir: dir})
	d := th.mustConnect(t, "dev1")
	twinClient(t, d, false)
	d.c.Disconnect(100)
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sessions", "dev1.json")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the persistent session was not saved: %v", err)
	}
	if err := os.WriteFile(path, []byte(`[{"filter":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := localhub.Start(t.Context(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start: %v, want an error naming %s", err, path)
	}
}
