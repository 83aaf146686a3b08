package localhub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// TestInvokeErrors: the real codes for unknown identities and offline
// devices, with the nested body, header, and tracking id (§5.3).
func TestInvokeErrors(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2/mod1"}})
	m := iothub.MethodRequest{MethodName: "m"}
	cases := []struct {
		name           string
		device, module string
		code           int
	}{
		{"unknown device", "ghost", "", iothub.CodeDeviceNotFound},
		{"unknown device on the module route", "ghost", "mod1", iothub.CodeDeviceNotFound},
		{"unknown module", "dev1", "nomod", iothub.CodeModuleNotFound},
		{"offline device", "dev1", "", iothub.CodeDeviceNotOnline},
		{"offline module", "dev2", "mod1", iothub.CodeDeviceNotOnline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := th.invoke(t, tc.device, tc.module, m)
			wantError(t, r, tc.code)
			// With connect timeout 0 the hub must not wait for the device at
			// all; the bug this catches is waiting out the response timeout.
			if el := time.Since(start); el >= iothub.DefaultResponseTimeout*time.Second {
				t.Errorf("took %v, want an answer without waiting for the %d s response timeout", el, iothub.DefaultResponseTimeout)
			}
		})
	}
}

// TestConnectedButNotSubscribed: a connected device without the methods
// subscription is not online for methods (§4.1).
func TestConnectedButNotSubscribed(t *testing.T) {
	th := startHub(t, localhub.Options{})
	th.mustConnect(t, "dev1")
	wantError(t, th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"}), iothub.CodeDeviceNotOnline)
}

// TestLateDevice: with connectTimeoutInSeconds 10 a device that connects
// and subscribes 1 s after the request arrives still gets it.
func TestLateDevice(t *testing.T) {
	th := startHub(t, localhub.Options{})
	connected := make(chan *device, 1)
	late := time.AfterFunc(time.Second, func() {
		d, err := th.connect(t, th.creds(t, "dev1", time.Hour), nil)
		if err != nil {
			t.Errorf("late connect: %v", err)
			connected <- nil
			return
		}
		d.subscribe(t, 0, echo)
		connected <- d
	})
	defer late.Stop()
	start := time.Now()
	r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m", Payload: []byte(`[1]`), ConnectTimeoutInSeconds: 10})
	if string(r.body) != `{"status":200,"payload":[1]}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("answered after %v, before the device connected", el)
	}
	if d := <-connected; d == nil {
		t.Fatal("late device failed")
	}
}

// TestDeviceNeverAnswers: 504101 at the requested response timeout; the
// late reply is dropped harmlessly; a reply with the rid from another
// identity does not complete the call.
func TestDeviceNeverAnswers(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2"}})
	d := th.mustConnect(t, "dev1")
	seen := d.subscribe(t, 0, func(request) (int, []byte, bool) { return 0, nil, false })
	other := th.mustConnect(t, "dev2")

	done := make(chan response, 1)
	start := time.Now()
	go func() {
		done <- th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: 5})
	}()
	req := <-seen
	// dev2 answers dev1's request: dropped, the call keeps waiting.
	other.c.Publish(iothub.MethodResponseTopic(200, req.rid), 0, false, []byte(`"intruder"`)).WaitTimeout(waitFor)
	r := <-done
	el := time.Since(start)
	wantError(t, r, iothub.CodeGatewayTimeout)
	// The requested timeout is honoured: never before it (load can only
	// delay, so this cannot flake), and not the 30 s default either. No
	// upper bound tighter than that: timed assertions flake on a shared box.
	if el < 5*time.Second || el >= iothub.DefaultResponseTimeout*time.Second {
		t.Errorf("504101 after %v, want at the requested 5 s response timeout (not before, not the %d s default)", el, iothub.DefaultResponseTimeout)
	}
	intruder := th.events.wait(t, 0, "the intruder's reply to be dropped", is(localhub.EventReplyDropped, "dev2"))
	if !errors.Is(intruder.Err, localhub.ErrForeignReply) || intruder.RequestID != req.rid || intruder.Status != 200 {
		t.Errorf("intruder's reply dropped as %+v, want $rid %s, status 200, %v", intruder, req.rid, localhub.ErrForeignReply)
	}
	// The late reply is dropped; the connection and the hub carry on.
	d.c.Publish(iothub.MethodResponseTopic(201, req.rid), 0, false, []byte(`"late"`)).WaitTimeout(waitFor)
	late := th.events.wait(t, 0, "the late reply to be dropped", is(localhub.EventReplyDropped, "dev1"))
	if !errors.Is(late.Err, localhub.ErrUnknownRequestID) || late.RequestID != req.rid || late.Status != 201 {
		t.Errorf("late reply dropped as %+v, want $rid %s, status 201, %v", late, req.rid, localhub.ErrUnknownRequestID)
	}
	select {
	case err := <-d.lost:
		t.Fatalf("device disconnected: %v", err)
	default:
	}
}

// TestPayloadsRoundTrip: any JSON value reaches the device as its exact
// bytes (null as "null") and the device's bytes come back verbatim.
func TestPayloadsRoundTrip(t *testing.T) {
	big := `"` + strings.Repeat("x", 100*1024) + `"`
	cases := []struct {
		name, payload, device string // device: what the device must see
	}{
		{"null", `null`, `null`},
		{"absent", ``, `null`},
		{"array", `[1,"two",{"3":[]}]`, `[1,"two",{"3":[]}]`},
		{"string", `"hello \"world\" \u00e9"`, `"hello \"world\" \u00e9"`},
		{"number", `-12.5e3`, `-12.5e3`},
		{"bool", `true`, `true`},
		{"object with spacing", `{ "a" : [ 1 , 2 ] }`, `{ "a" : [ 1 , 2 ] }`},
		{"100 KB", big, big},
	}
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	seen := d.subscribe(t, 1, echo)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"methodName":"echo","responseTimeoutInSeconds":10%s}`, map[bool]string{true: "", false: `,"payload":` + tc.payload}[tc.payload == ""])
			r := th.post(t, iothub.MethodsPath("dev1", "")+"?"+iothub.MethodsQuery, th.serviceToken(t), []byte(body))
			got := <-seen
			if string(got.payload) != tc.device {
				t.Errorf("device saw %.80q, want %.80q", got.payload, tc.device)
			}
			if want := `{"status":200,"payload":` + tc.device + `}`; string(r.body) != want {
				t.Errorf("result %.120s, want %.120s", r.body, want)
			}
		})
	}
}

// TestDeviceReplies: what the caller gets for unusual device bodies.
func TestDeviceReplies(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	d.subscribe(t, 0, func(r request) (int, []byte, bool) {
		var spec struct {
			Status int
			Body   string
		}
		if err := json.Unmarshal(r.payload, &spec); err != nil {
			t.Errorf("device got payload %s: %v", r.payload, err)
		}
		return spec.Status, []byte(spec.Body), true
	})
	cases := []struct {
		name, body string
		status     int
		want       string
		code       int
	}{
		{"empty body is null", "", 200, `{"status":200,"payload":null}`, 0},
		{"device status kept", `{"e":1}`, 404, `{"status":404,"payload":{"e":1}}`, 0},
		{"negative status", `1`, -1, `{"status":-1,"payload":1}`, 0},
		{"non-JSON body", `{'filename': 'logs.zip'}`, 200, `{"status":500,"payload":null}`, 0},
		{"reply over 128 KB", `"` + strings.Repeat("y", 129*1024) + `"`, 200, "", iothub.CodeMessageTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, _ := json.Marshal(map[string]any{"Status": tc.status, "Body": tc.body})
			r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m", Payload: spec})
			if tc.code != 0 {
				wantError(t, r, tc.code)
				return
			}
			if string(r.body) != tc.want {
				t.Errorf("got %d %s, want %s", r.status, r.body, tc.want)
			}
		})
	}
}

// TestBadRequests: body validation, routes, methods, api-version.
func TestBadRequests(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	d.subscribe(t, 0, echo)
	path := iothub.MethodsPath("dev1", "") + "?" + iothub.MethodsQuery
	tooBig := `{"methodName":"m","payload":"` + strings.Repeat("z", 129*1024) + `"}`
	cases := []struct {
		name, path, body string
		code             int
	}{
		{"not JSON", path, `{methodName:`, iothub.CodeIotHubFormatError},
		{"not an object", path, `[1]`, iothub.CodeIotHubFormatError},
		{"trailing data", path, `{"methodName":"m"} x`, iothub.CodeIotHubFormatError},
		{"no methodName", path, `{"payload":1}`, iothub.CodeArgumentNull},
		{"bad methodName", path, `{"methodName":"a/b"}`, iothub.CodeArgumentInvalid},
		{"response timeout 4", path, `{"methodName":"m","responseTimeoutInSeconds":4}`, iothub.CodeArgumentInvalid},
		{"response timeout 301", path, `{"methodName":"m","responseTimeoutInSeconds":301}`, iothub.CodeArgumentInvalid},
		{"connect timeout -1", path, `{"methodName":"m","connectTimeoutInSeconds":-1}`, iothub.CodeArgumentInvalid},
		{"connect timeout 301", path, `{"methodName":"m","connectTimeoutInSeconds":301}`, iothub.CodeArgumentInvalid},
		{"fractional timeout", path, `{"methodName":"m","responseTimeoutInSeconds":5.5}`, iothub.CodeArgumentInvalid},
		{"129 KB payload", path, tooBig, iothub.CodeMessageTooLarge},
		{"no api-version", iothub.MethodsPath("dev1", ""), `{"methodName":"m"}`, iothub.CodeArgumentInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, th.post(t, tc.path, th.serviceToken(t), []byte(tc.body)), tc.code)
		})
	}
	t.Run("unknown route", func(t *testing.T) {
		for _, p := range []string{"/twins/dev1/methods/x", "/devices/dev1/methods", "/"} {
			if r := th.post(t, p+"?"+iothub.MethodsQuery, th.serviceToken(t), []byte(`{}`)); r.status != 404 {
				t.Errorf("POST %s: %d, want 404", p, r.status)
			}
		}
	})
	t.Run("GET is 405", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+th.info.HTTPSAddr+path, nil)
		req.Host = "localhost"
		resp, err := th.http.Do(withServerName(req))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get(iothub.ErrorCodeHeader) != "MethodNotAllowed" {
			t.Errorf("GET: %d %q, want 405 MethodNotAllowed", resp.StatusCode, resp.Header.Get(iothub.ErrorCodeHeader))
		}
	})
	t.Run("escaped ids", func(t *testing.T) {
		if _, err := th.AddDevice("dev.x:y@z", ""); err != nil {
			t.Fatal(err)
		}
		dd := th.mustConnect(t, "dev.x:y@z")
		dd.subscribe(t, 0, echo)
		if r := th.invoke(t, "dev.x:y@z", "", iothub.MethodRequest{MethodName: "m"}); r.status != 200 {
			t.Errorf("escaped id: %d %s", r.status, r.body)
		}
	})
}

// withServerName dials by IP while verifying the certificate for localhost.
func withServerName(r *http.Request) *http.Request {
	r.URL.Host = strings.Replace(r.URL.Host, "127.0.0.1", "localhost", 1)
	return r
}

// TestOversizedBodyNotRead: a body far over the limit is refused with 413
// after reading at most the limit, whether or not its length is declared.
func TestOversizedBodyNotRead(t *testing.T) {
	th := startHub(t, localhub.Options{})
	cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	url := "https://" + cs.HostName + iothub.MethodsPath("dev1", "") + "?" + iothub.MethodsQuery
	const size = 64 << 20
	for _, declared := range []bool{true, false} {
		t.Run(fmt.Sprintf("declared length %v", declared), func(t *testing.T) {
			var read atomic.Int64
			body := &countingReader{r: io.LimitReader(zeros{}, size), n: &read}
			req, _ := http.NewRequest(http.MethodPost, url, io.NopCloser(body))
			if declared {
				req.ContentLength = size
			}
			req.Header.Set("Authorization", th.serviceToken(t))
			resp, err := th.http.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Errorf("status %d, want 413", resp.StatusCode)
				}
			}
			if n := read.Load(); n > 8<<20 {
				t.Errorf("the hub consumed %d bytes of a %d-byte body", n, size)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestServiceAuth: anything but a valid service SAS is 401 401002.
func TestServiceAuth(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	d.subscribe(t, 0, echo)
	cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	sign := func(sr, key, skn string, ttl time.Duration) string {
		tok, err := iothub.Sign(sr, key, skn, time.Now().Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	devKey, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"])
	cases := []struct {
		name, auth string
		ok         bool
	}{
		{"valid, audience with port", sign(cs.HostName, cs.SharedAccessKey, "iothubowner", time.Hour), true},
		{"valid, audience without port", sign("localhost", cs.SharedAccessKey, "iothubowner", time.Hour), true},
		{"wrong key", sign(cs.HostName, otherKey, "iothubowner", time.Hour), false},
		{"expired", sign(cs.HostName, cs.SharedAccessKey, "iothubowner", -time.Minute), false},
		{"unknown policy", sign(cs.HostName, cs.SharedAccessKey, "registryRead", time.Hour), false},
		{"no policy (device key)", sign("localhost/devices/dev1", devKey.SharedAccessKey, "", time.Hour), false},
		{"another hub", sign("otherhub", cs.SharedAccessKey, "iothubowner", time.Hour), false},
		{"missing", "", false},
		{"garbage", "Bearer x", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := th.post(t, iothub.MethodsPath("dev1", "")+"?"+iothub.MethodsQuery, tc.auth, []byte(`{"methodName":"m"}`))
			if tc.ok {
				if r.status != 200 {
					t.Fatalf("status %d %s, want 200", r.status, r.body)
				}
				return
			}
			wantError(t, r, iothub.CodeUnauthorized)
		})
	}
}

// TestFaultsDetectable: each fault breaks exactly what it names.
func TestFaultsDetectable(t *testing.T) {
	t.Run("EmptyNullPayload", func(t *testing.T) {
		th := startHub(t, localhub.Options{Faults: localhub.Faults{EmptyNullPayload: true}})
		d := th.mustConnect(t, "dev1")
		seen := d.subscribe(t, 0, echo)
		th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"})
		if got := <-seen; len(got.payload) != 0 {
			t.Errorf("device saw %q, want an empty body under the fault", got.payload)
		}
	})
	t.Run("OmitJSONContentType", func(t *testing.T) {
		th := startHub(t, localhub.Options{Faults: localhub.Faults{OmitJSONContentType: true}})
		d := th.mustConnect(t, "dev1")
		d.subscribe(t, 0, echo)
		r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"})
		if ct := r.header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q under the fault", ct)
		}
	})
}

// TestModuleRoundTrip: a module identity connects as device/module and is
// invoked through the modules route.
func TestModuleRoundTrip(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"edge/mod1"}})
	if _, ok := th.Info().Devices["edge"]; !ok {
		t.Error("registering a module did not register its device")
	}
	d := th.mustConnect(t, "edge/mod1")
	seen := d.subscribe(t, 0, echo)
	r := th.invoke(t, "edge", "mod1", iothub.MethodRequest{MethodName: "m", Payload: []byte(`{"k":"v"}`)})
	if string(r.body) != `{"status":200,"payload":{"k":"v"}}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	<-seen
	wantError(t, th.invoke(t, "edge", "", iothub.MethodRequest{MethodName: "m"}), iothub.CodeDeviceNotOnline)
	// Module telemetry goes to the module's topic only.
	if tok := d.c.Publish("devices/edge/modules/mod1/messages/events/", 0, false, []byte("x")); !tok.WaitTimeout(waitFor) {
		t.Fatal("telemetry publish timed out")
	}
	d.c.Publish("devices/edge/messages/events/", 0, false, []byte("x"))
	_ = d.waitLost(t)
}

// TestCloseFailsPendingCalls: Close answers waiting calls and is idempotent.
func TestCloseFailsPendingCalls(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	seen := d.subscribe(t, 0, func(request) (int, []byte, bool) { return 0, nil, false })
	errs := make(chan error, 1)
	go func() {
		_, err := th.Invoke(t.Context(), "dev1", "", iothub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 60})
		errs <- err
	}()
	<-seen
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		var e *iothub.Error
		if !errors.As(err, &e) || e.Code != iothub.CodeServiceUnavailable {
			t.Errorf("pending call after Close: %v, want an *iothub.Error 503001", err)
		}
	case <-time.After(waitFor):
		t.Fatal("pending call not failed by Close")
	}
	_ = d.waitLost(t)
	th.events.wait(t, 0, "the device's connection to end with the hub", isErr(localhub.EventDisconnected, "dev1", localhub.ErrShuttingDown))
	if err := th.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
