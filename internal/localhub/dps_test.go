package localhub_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

const (
	testScope = "0ne00000001"
	testGroup = "gateways"
	testIndiv = "dev-01"
)

// startDPSHub starts a hub with a DPS endpoint, group testGroup and
// individual enrollment testIndiv.
func startDPSHub(t *testing.T, opts localhub.Options) *testHub {
	t.Helper()
	if opts.DPSAddr == "" {
		opts.DPSAddr = "127.0.0.1:0"
	}
	if opts.IDScope == "" {
		opts.IDScope = testScope
	}
	if opts.EnrollmentGroups == nil {
		opts.EnrollmentGroups = []string{testGroup}
	}
	if opts.Enrollments == nil {
		opts.Enrollments = []string{testIndiv}
	}
	return startHub(t, opts)
}

// dpsClient is a raw paho connection to the hub's DPS endpoint.
type dpsClient struct {
	c    paho.Client
	msgs chan paho.Message
}

// dpsConnect connects to DPS as reg with username and password; it
// returns the CONNECT error.
func (th *testHub) dpsConnect(t *testing.T, reg, username, password string) (*dpsClient, error) {
	t.Helper()
	d := &dpsClient{msgs: make(chan paho.Message, 16)}
	o := paho.NewClientOptions().
		AddBroker("ssl://" + th.Info().DPS.Addr).
		SetTLSConfig(&tls.Config{RootCAs: th.pool, ServerName: "localhost"}).
		SetClientID(reg).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(180 * time.Second).SetConnectTimeout(waitFor).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.msgs <- m })
	d.c = paho.NewClient(o)
	tok := d.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("dps connect %s: timed out", reg)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	sub := d.c.Subscribe(iothub.DPSResponseSubscription, 2, nil)
	if !sub.WaitTimeout(waitFor) || sub.Error() != nil {
		t.Fatalf("subscribe: %v", sub.Error())
	}
	if got := sub.(*paho.SubscribeToken).Result()[iothub.DPSResponseSubscription]; got != 1 {
		t.Fatalf("granted QoS %d, want 1", got)
	}
	return d, nil
}

// dpsToken signs reg's DPS token (Node form) with key.
func dpsToken(t *testing.T, scope, reg, key string) string {
	t.Helper()
	tok, err := iothub.SignDPS(scope, reg, key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mustDPSConnect connects reg with a Node-form token signed with key.
func (th *testHub) mustDPSConnect(t *testing.T, reg, key string) *dpsClient {
	t.Helper()
	d, err := th.dpsConnect(t, reg, iothub.DPSUsername(testScope, reg, "azure-iot-provisioning-device/1.9.1"), dpsToken(t, testScope, reg, key))
	if err != nil {
		t.Fatalf("dps connect %s: %v", reg, err)
	}
	return d
}

// dpsAnswer is one response as the device saw it.
type dpsAnswer struct {
	status     int
	rid        string
	retryAfter time.Duration
	qos        byte
	body       map[string]any
	raw        []byte
}

// ask publishes body on topic (QoS 1) and returns the response.
func (d *dpsClient) ask(t *testing.T, topic, body string) dpsAnswer {
	t.Helper()
	if tok := d.c.Publish(topic, 1, false, body); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	select {
	case m := <-d.msgs:
		status, rid, ra, err := iothub.ParseDPSResponseTopic(m.Topic())
		if err != nil {
			t.Fatalf("response topic %q: %v", m.Topic(), err)
		}
		a := dpsAnswer{status: status, rid: rid, retryAfter: ra, qos: m.Qos(), raw: m.Payload()}
		if err := json.Unmarshal(m.Payload(), &a.body); err != nil {
			t.Fatalf("response body %q is not a JSON object: %v", m.Payload(), err)
		}
		return a
	case <-time.After(waitFor):
		t.Fatalf("no answer to %s", topic)
	}
	return dpsAnswer{}
}

func (d *dpsClient) register(t *testing.T, rid, reg string) dpsAnswer {
	t.Helper()
	return d.ask(t, iothub.DPSRegisterTopic(rid), `{"registrationId":"`+reg+`"}`)
}

// wantDPSError checks an error answer: status, errorCode and body shape.
func wantDPSError(t *testing.T, a dpsAnswer, status, code int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.raw)
	}
	var e iothub.DPSError
	if err := json.Unmarshal(a.raw, &e); err != nil || e.ErrorCode != code || e.Message == "" || e.TrackingID == "" || e.TimestampUTC == "" {
		t.Fatalf("body %s, want errorCode %d, message, trackingId, timestampUtc", a.raw, code)
	}
	if a.qos != 1 {
		t.Errorf("QoS %d, want 1", a.qos)
	}
}

var (
	operationIDShape = regexp.MustCompile(`^4\.[0-9a-f]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	dpsTimeShape     = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)
)

// provision registers reg over d and polls once; it returns the 200 body.
func provision(t *testing.T, d *dpsClient, reg string) iothub.DPSOperation {
	t.Helper()
	a := d.register(t, "1", reg)
	if a.status != 202 || a.rid != "1" || a.retryAfter != time.Second || a.qos != 1 {
		t.Fatalf("register: status %d rid %q retry-after %s QoS %d, want 202 1 1s 1; body %s", a.status, a.rid, a.retryAfter, a.qos, a.raw)
	}
	opID, _ := a.body["operationId"].(string)
	if !operationIDShape.MatchString(opID) || a.body["status"] != "assigning" {
		t.Fatalf("register body %s, want operationId 4.<16 hex>.<uuid> and status assigning", a.raw)
	}
	p := d.ask(t, iothub.DPSPollTopic("poll-2", opID), " ")
	if p.status != 200 || p.rid != "poll-2" || p.retryAfter != 0 {
		t.Fatalf("poll: status %d rid %q retry-after %s, want 200 poll-2 0; body %s", p.status, p.rid, p.retryAfter, p.raw)
	}
	var op iothub.DPSOperation
	if err := json.Unmarshal(p.raw, &op); err != nil || op.RegistrationState == nil {
		t.Fatalf("poll body %s: %v", p.raw, err)
	}
	if op.OperationID != opID || op.Status != "assigned" {
		t.Fatalf("poll body %s, want operation %s assigned", p.raw, opID)
	}
	return op
}

func TestDPSRegisterIndividualAndGroup(t *testing.T) {
	th := startDPSHub(t, localhub.Options{})
	dps := th.Info().DPS
	derived, err := iothub.DeriveDeviceKey(dps.Groups[testGroup], "sensor-42")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ reg, key string }{
		{testIndiv, dps.Enrollments[testIndiv]},
		{"sensor-42", derived},
	} {
		t.Run(tc.reg, func(t *testing.T) {
			d := th.mustDPSConnect(t, tc.reg, tc.key)
			op := provision(t, d, tc.reg)
			st := op.RegistrationState
			if st.RegistrationID != tc.reg || st.DeviceID != tc.reg || st.AssignedHub != localhub.HostName ||
				st.Status != "assigned" || st.Substatus != "initialAssignment" || st.ETag == "" {
				t.Errorf("registrationState %+v", *st)
			}
			for _, ts := range []string{st.CreatedDateTimeUTC, st.LastUpdatedDateTimeUTC} {
				if !dpsTimeShape.MatchString(ts) {
					t.Errorf("time %q, want 7 fractional digits", ts)
				}
			}
			// The assigned device reaches the hub with its key and answers a method.
			cs, err := iothub.ParseDeviceConnectionString(th.Info().Devices[tc.reg])
			if err != nil || cs.SharedAccessKey != tc.key {
				t.Fatalf("hub.json device %s: key %q, want the DPS key (%v)", tc.reg, cs.SharedAccessKey, err)
			}
			dev := th.mustConnect(t, tc.reg)
			dev.subscribe(t, 1, echo)
			r := th.invoke(t, tc.reg, "", iothub.MethodRequest{MethodName: "ping", Payload: json.RawMessage(`{"a":1}`)})
			if r.status != 200 || !strings.Contains(string(r.body), `"a":1`) {
				t.Fatalf("invoke: %d %s", r.status, r.body)
			}
		})
	}
}

func TestDPSTokenForms(t *testing.T) {
	th := startDPSHub(t, localhub.Options{})
	key := th.Info().DPS.Enrollments[testIndiv]
	node := dpsToken(t, testScope, testIndiv, key)
	se := node[strings.LastIndex(node, "se=")+3:]
	python, err := iothub.Sign(iothub.DPSResource(testScope, testIndiv), key, "", time.Unix(mustInt(t, se), 0)) // sr encoded, no skn
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Replace(python, "&se=", "&skn=registration&se=", 1) // sr encoded, skn present
	if !strings.Contains(python, "%2Fregistrations%2F") || strings.Contains(python, "skn") {
		t.Fatalf("python form %q", python)
	}
	for name, tok := range map[string]string{"node": node, "python": python, "docs": docs} {
		t.Run(name, func(t *testing.T) {
			d, err := th.dpsConnect(t, testIndiv, iothub.DPSUsername(testScope, testIndiv, ""), tok)
			if err != nil {
				t.Fatal(err)
			}
			provision(t, d, testIndiv)
		})
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

func TestDPSRefusals(t *testing.T) {
	th := startDPSHub(t, localhub.Options{})
	dps := th.Info().DPS
	other := base64Key(t)
	t.Run("wrong key: CONNACK 0 then 401", func(t *testing.T) {
		d := th.mustDPSConnect(t, testIndiv, other)
		wantDPSError(t, d.register(t, "r1", testIndiv), 401, 401002)
	})
	t.Run("group key used directly", func(t *testing.T) {
		d := th.mustDPSConnect(t, "sensor-1", dps.Groups[testGroup])
		wantDPSError(t, d.register(t, "r1", "sensor-1"), 401, 401002)
	})
	t.Run("unknown registration", func(t *testing.T) {
		d := th.mustDPSConnect(t, testIndiv+"x", dps.Enrollments[testIndiv])
		wantDPSError(t, d.register(t, "r1", testIndiv+"x"), 401, 401002)
	})
	t.Run("expired token", func(t *testing.T) {
		tok, _ := iothub.SignDPS(testScope, testIndiv, dps.Enrollments[testIndiv], time.Now().Add(-time.Minute))
		d, err := th.dpsConnect(t, testIndiv, iothub.DPSUsername(testScope, testIndiv, ""), tok)
		if err != nil {
			t.Fatal(err)
		}
		wantDPSError(t, d.register(t, "r1", testIndiv), 401, 401002)
	})
	t.Run("token for another registration", func(t *testing.T) {
		tok := dpsToken(t, testScope, "dev-02", dps.Enrollments[testIndiv])
		d, err := th.dpsConnect(t, testIndiv, iothub.DPSUsername(testScope, testIndiv, ""), tok)
		if err != nil {
			t.Fatal(err)
		}
		wantDPSError(t, d.register(t, "r1", testIndiv), 401, 401002)
	})
	t.Run("bad registration id", func(t *testing.T) {
		d := th.mustDPSConnect(t, "Dev_01", dps.Enrollments[testIndiv])
		wantDPSError(t, d.register(t, "r1", "Dev_01"), 400, 400004)
	})
	t.Run("body names another registration", func(t *testing.T) {
		d := th.mustDPSConnect(t, testIndiv, dps.Enrollments[testIndiv])
		wantDPSError(t, d.register(t, "r1", "dev-02"), 400, 400004)
		wantDPSError(t, d.ask(t, iothub.DPSRegisterTopic("r2"), "not json"), 400, 400004)
	})
	t.Run("unknown operation", func(t *testing.T) {
		d := th.mustDPSConnect(t, testIndiv, dps.Enrollments[testIndiv])
		wantDPSError(t, d.ask(t, iothub.DPSPollTopic("p1", "4.0123456789abcdef.00000000-0000-4000-8000-000000000000"), " "), 404, 404002)
	})
	t.Run("another registration's operation", func(t *testing.T) {
		d := th.mustDPSConnect(t, testIndiv, dps.Enrollments[testIndiv])
		a := d.register(t, "r1", testIndiv)
		derived, _ := iothub.DeriveDeviceKey(dps.Groups[testGroup], "sensor-9")
		e := th.mustDPSConnect(t, "sensor-9", derived)
		wantDPSError(t, e.ask(t, iothub.DPSPollTopic("p1", a.body["operationId"].(string)), " "), 404, 404002)
	})
}

func base64Key(t *testing.T) string {
	t.Helper()
	return "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // §7 test key: no enrollment of the hub has it
}

func TestDPSConnectRefused(t *testing.T) {
	th := startDPSHub(t, localhub.Options{})
	key := th.Info().DPS.Enrollments[testIndiv]
	for _, tc := range []struct {
		name, client, username string
		code                   byte
	}{
		{"not a DPS username", testIndiv, "localhost/" + testIndiv + "/?api-version=2021-04-12", 4},
		{"no api-version", testIndiv, testScope + "/registrations/" + testIndiv + "/", 4},
		{"other id scope", testIndiv, iothub.DPSUsername("0ne99999999", testIndiv, ""), 5},
		{"client id is not the registration id", "dev-02", iothub.DPSUsername(testScope, testIndiv, ""), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := th.dpsConnect(t, tc.client, tc.username, dpsToken(t, testScope, testIndiv, key))
			if err == nil {
				t.Fatal("connected, want a refusal")
			}
			want := pahopackets.ConnErrors[tc.code]
			if !errors.Is(err, want) {
				t.Fatalf("got %v, want CONNACK %d (%v)", err, tc.code, want)
			}
		})
	}
	t.Run("TV-D4 username", func(t *testing.T) {
		u := testScope + "/registrations/" + testIndiv + "/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1"
		if _, err := th.dpsConnect(t, testIndiv, u, dpsToken(t, testScope, testIndiv, key)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDPSForbiddenSubscription(t *testing.T) {
	th := startDPSHub(t, localhub.Options{})
	d := th.mustDPSConnect(t, testIndiv, th.Info().DPS.Enrollments[testIndiv])
	tok := d.c.Subscribe("$dps/#", 1, nil)
	if !tok.WaitTimeout(waitFor) {
		t.Fatal("subscribe timed out")
	}
	if got := tok.(*paho.SubscribeToken).Result()["$dps/#"]; got != 0x80 {
		t.Fatalf("SUBACK %#x, want 0x80", got)
	}
}

func TestDPSDisabledEnrollment(t *testing.T) {
	th := startDPSHub(t, localhub.Options{})
	dps := th.Info().DPS
	if err := th.SetEnrollmentEnabled(localhub.EnrollmentGroup, testGroup, false); err != nil {
		t.Fatal(err)
	}
	if err := th.SetEnrollmentEnabled(localhub.EnrollmentGroup, "nope", false); !errors.Is(err, localhub.ErrUnknownEnrollment) {
		t.Fatalf("unknown group: %v, want ErrUnknownEnrollment", err)
	}
	derived, _ := iothub.DeriveDeviceKey(dps.Groups[testGroup], "sensor-1")
	d := th.mustDPSConnect(t, "sensor-1", derived)
	a := d.register(t, "r1", "sensor-1")
	st, _ := a.body["registrationState"].(map[string]any)
	if a.status != 200 || a.body["status"] != "disabled" || st["status"] != "disabled" {
		t.Fatalf("disabled: %d %s, want 200 status disabled", a.status, a.raw)
	}
	if _, ok := th.Info().Devices["sensor-1"]; ok {
		t.Fatal("a disabled enrollment registered the device")
	}
	if err := th.SetEnrollmentEnabled(localhub.EnrollmentGroup, testGroup, true); err != nil {
		t.Fatal(err)
	}
	provision(t, d, "sensor-1")
}

func TestDPSThrottleFault(t *testing.T) {
	th := startDPSHub(t, localhub.Options{Faults: localhub.Faults{DPSThrottle: 1}})
	d := th.mustDPSConnect(t, testIndiv, th.Info().DPS.Enrollments[testIndiv])
	a := d.register(t, "r1", testIndiv)
	wantDPSError(t, a, 429, 429001)
	if a.retryAfter != time.Second {
		t.Errorf("retry-after %s, want 1s", a.retryAfter)
	}
	provision(t, d, testIndiv)
}

func TestDPSStatePersists(t *testing.T) {
	dir := t.TempDir()
	th := startDPSHub(t, localhub.Options{Dir: dir})
	first := th.Info().DPS
	d := th.mustDPSConnect(t, testIndiv, first.Enrollments[testIndiv])
	op := provision(t, d, testIndiv)
	if err := th.SetEnrollmentEnabled(localhub.EnrollmentIndividual, testIndiv, false); err != nil {
		t.Fatal(err)
	}
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "dps.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dps.json: %v mode %v, want 0600", err, fi.Mode())
	}
	th2 := startDPSHub(t, localhub.Options{Dir: dir})
	second := th2.Info().DPS
	second.Addr, first.Addr = "", ""
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("dps info after restart %+v, want %+v", second, first)
	}
	onDisk, err := localhub.ReadInfo(dir)
	if err != nil || onDisk.DPS == nil || !reflect.DeepEqual(onDisk.DPS.Groups, first.Groups) || onDisk.DPS.IDScope != first.IDScope {
		t.Fatalf("hub.json dps %+v (%v), want %+v", onDisk.DPS, err, first)
	}
	// The operation survives, and so does the disabled flag.
	d2 := th2.mustDPSConnect(t, testIndiv, first.Enrollments[testIndiv])
	p := d2.ask(t, iothub.DPSPollTopic("p", op.OperationID), " ")
	if p.status != 200 || p.body["status"] != "assigned" {
		t.Fatalf("poll after restart: %d %s", p.status, p.raw)
	}
	if a := d2.register(t, "r", testIndiv); a.body["status"] != "disabled" {
		t.Fatalf("register after restart: %d %s, want disabled", a.status, a.raw)
	}
}

func TestDPSGeneratedScopeAndReRegistration(t *testing.T) {
	th := startHub(t, localhub.Options{DPSAddr: "127.0.0.1:0", Enrollments: []string{testIndiv}})
	dps := th.Info().DPS
	if !regexp.MustCompile(`^0ne[0-9A-F]{8}$`).MatchString(dps.IDScope) {
		t.Fatalf("generated id scope %q, want 0ne + 8 uppercase hex", dps.IDScope)
	}
	if dps.Groups == nil || len(dps.Enrollments) != 1 {
		t.Fatalf("dps info %+v", dps)
	}
	tok := dpsToken(t, dps.IDScope, testIndiv, dps.Enrollments[testIndiv])
	connect := func() *dpsClient {
		d, err := th.dpsConnect(t, testIndiv, iothub.DPSUsername(dps.IDScope, testIndiv, ""), tok)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	firstOp := provision(t, connect(), testIndiv)
	first := firstOp.RegistrationState
	again := provision(t, connect(), testIndiv).RegistrationState
	if again.Substatus != "initialAssignment" || again.CreatedDateTimeUTC != first.CreatedDateTimeUTC || again.ETag == first.ETag {
		t.Fatalf("re-registration %+v after %+v", *again, *first)
	}
	// One operation per registration: the one a re-registration replaced
	// is forgotten, so registering again and again keeps nothing more.
	wantDPSError(t, connect().ask(t, iothub.DPSPollTopic("old", firstOp.OperationID), " "), 404, 404002)
	r := th.request(t, "DELETE", "/devices/"+url.PathEscape(testIndiv)+"?api-version=2021-04-12", th.serviceToken(t), nil)
	if r.status != 204 && r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	reset := provision(t, connect(), testIndiv).RegistrationState
	if reset.Substatus != "deviceDataReset" {
		t.Fatalf("after delete: substatus %q, want deviceDataReset", reset.Substatus)
	}
	if _, ok := th.Info().Devices[testIndiv]; !ok {
		t.Fatal("device not registered again")
	}
}
