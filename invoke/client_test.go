package invoke

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

func TestInvokeSendsTheProtocolRequest(t *testing.T) {
	hub := newFakeHub(t)
	opts := hub.options()
	opts.UserAgent = "methodd/v1.2.3"
	c, err := NewClient(hub.connectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := []byte(`{"b": [1, 2.50, "x"],  "a":null}`)
	req := iothub.MethodRequest{MethodName: "echo", Payload: payload, ResponseTimeoutInSeconds: 7, ConnectTimeoutInSeconds: 3}
	res, err := c.Invoke(context.Background(), Target{Device: "dev#1", Module: "mod 1"}, req)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if res.Status != 200 || string(res.Payload) != string(payload) {
		t.Errorf("got status %d payload %s, want 200 %s", res.Status, res.Payload, payload)
	}
	if want := string(iothub.EncodeMethodResult(200, payload)); string(res.Raw) != want {
		t.Errorf("got raw %s, want %s", res.Raw, want)
	}
	rec := hub.recorded()
	if len(rec) != 1 {
		t.Fatalf("got %d requests, want 1", len(rec))
	}
	r := rec[0]
	if r.Path != "/twins/dev#1/modules/mod 1/methods" || r.Query != iothub.MethodsQuery {
		t.Errorf("got path %q query %q", r.Path, r.Query)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json; charset=utf-8",
		"Accept":       "application/json",
		"User-Agent":   "methodd/v1.2.3",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	if id := r.Header.Get("Request-Id"); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("Request-Id %q is not a v4 UUID", id)
	}
	sas, err := iothub.ParseSAS(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := sas.Resource(); res != hub.connectionString().HostName || sas.SKN != "iothubowner" {
		t.Errorf("token for %q skn %q, want the HostName with port and iothubowner", res, sas.SKN)
	}
	if got, want := string(r.Body), string(req.Encode()); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	m := decodeBody(t, r.Body)
	if len(m) != 4 {
		t.Errorf("body has %d fields, want all four: %s", len(m), r.Body)
	}
}

func TestInvokeErrors(t *testing.T) {
	hub := newFakeHub(t)
	c := hub.client(t)
	tests := []struct {
		method       string
		wantCode     int
		wantKind     Kind
		wantAttempts int
	}{
		{"offline", iothub.CodeDeviceNotOnline, KindUnreachable, 1},
		{"legacy", iothub.CodeDeviceNotOnline, KindUnreachable, 1},
		{"slow", iothub.CodeGatewayTimeout, KindTimeout, 1},
		{"server500", iothub.CodeServerError, KindError, 1},
		{"unavailable", iothub.CodeServiceUnavailable, KindError, 5},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			res, err := c.Invoke(context.Background(), Target{Device: "d"}, iothub.MethodRequest{MethodName: tt.method, ResponseTimeoutInSeconds: 5})
			var he *iothub.Error
			if !errors.As(err, &he) {
				t.Fatalf("got %v, want an *iothub.Error", err)
			}
			if he.Code != tt.wantCode || he.HTTPStatus != tt.wantCode/1000 || he.TrackingID == "" {
				t.Errorf("got code %d status %d tracking %q, want %d", he.Code, he.HTTPStatus, he.TrackingID, tt.wantCode)
			}
			if k := KindOf(res, err); k != tt.wantKind {
				t.Errorf("got kind %v, want %v", k, tt.wantKind)
			}
			if !strings.Contains(err.Error(), he.TrackingID) || !strings.Contains(err.Error(), "invoke d "+tt.method) {
				t.Errorf("error %q lacks the target or tracking id", err)
			}
			if n := hub.callCount(tt.method); n != tt.wantAttempts {
				t.Errorf("hub saw %d calls, want %d", n, tt.wantAttempts)
			}
		})
	}
}

func TestInvokeRetriesThrottling(t *testing.T) {
	hub := newFakeHub(t)
	res, err := hub.client(t).Invoke(context.Background(), Target{Device: "d"}, iothub.MethodRequest{MethodName: "throttle", ResponseTimeoutInSeconds: 5})
	if err != nil || res.Status != 200 || string(res.Payload) != `"finally"` {
		t.Fatalf("got %+v, %v; want 200 \"finally\"", res, err)
	}
	if n := hub.callCount("throttle"); n != 3 {
		t.Errorf("hub saw %d calls, want 3 (two 429s, then success)", n)
	}
}

func TestInvokeMalformedResult(t *testing.T) {
	hub := newFakeHub(t)
	res, err := hub.client(t).Invoke(context.Background(), Target{Device: "d"}, iothub.MethodRequest{MethodName: "garbage", ResponseTimeoutInSeconds: 5})
	if !errors.Is(err, ErrMalformedResult) {
		t.Fatalf("got %v, want ErrMalformedResult", err)
	}
	if !strings.Contains(string(res.Raw), "'a'") {
		t.Errorf("Raw %q does not keep the body", res.Raw)
	}
}

func TestInvokeWrongKeyNeverLeaks(t *testing.T) {
	hub := newFakeHub(t)
	cs := hub.connectionString()
	cs.SharedAccessKey = "V1JPTkctS0VZLVNIT1VMRC1OT1QtTEVBSy0wMTIzNDU=" // base64 "WRONG-KEY-SHOULD-NOT-LEAK-012345"
	c, err := NewClient(cs, hub.options())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Invoke(context.Background(), Target{Device: "d"}, iothub.MethodRequest{MethodName: "echo", ResponseTimeoutInSeconds: 5})
	var he *iothub.Error
	if !errors.As(err, &he) || he.Code != iothub.CodeUnauthorized || KindOf(res, err) != KindError {
		t.Fatalf("got %v, want 401002", err)
	}
	sig := hub.recorded()[0].Header.Get("Authorization")
	sigPart := sig[strings.Index(sig, "sig=")+4 : strings.Index(sig, "&se=")]
	for _, secret := range []string{cs.SharedAccessKey, "WRONG-KEY", sigPart} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a secret %q", err, secret)
		}
	}
}

func TestNewClientRejectsBadStrings(t *testing.T) {
	tests := map[string]iothub.ConnectionString{
		"no policy":  {HostName: "h", SharedAccessKey: testKey},
		"no key":     {HostName: "h", SharedAccessKeyName: "p"},
		"no host":    {SharedAccessKeyName: "p", SharedAccessKey: testKey},
		"bad base64": {HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: "SECRET!!notbase64"},
	}
	for name, cs := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewClient(cs, ClientOptions{})
			if !errors.Is(err, iothub.ErrConnectionString) {
				t.Fatalf("got %v, want ErrConnectionString", err)
			}
			if cs.SharedAccessKey != "" && strings.Contains(err.Error(), cs.SharedAccessKey) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestInvokeUnreachableHostIsATransportError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := NewClient(iothub.ConnectionString{HostName: addr, SharedAccessKeyName: "p", SharedAccessKey: testKey}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Invoke(context.Background(), Target{Device: "d"}, iothub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 5})
	var ne *net.OpError
	if !errors.As(err, &ne) || KindOf(res, err) != KindError {
		t.Fatalf("got %v, want a wrapped *net.OpError", err)
	}
}

// deadlineRecorder is a RoundTripper that records the request's deadline.
type deadlineRecorder struct{ got chan time.Duration }

func (d deadlineRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	dl, ok := r.Context().Deadline()
	if !ok {
		d.got <- -1
	} else {
		d.got <- time.Until(dl)
	}
	return nil, errors.New("recorded")
}

func TestInvokeDeadlineExceedsBothTimeouts(t *testing.T) {
	rec := deadlineRecorder{got: make(chan time.Duration, 1)}
	c, err := NewClient(iothub.ConnectionString{HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: testKey},
		ClientOptions{HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Invoke(context.Background(), Target{Device: "d"}, iothub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 100, ConnectTimeoutInSeconds: 200})
	got := <-rec.got
	want := 300*time.Second + RequestSlack
	if got <= 300*time.Second || got > want {
		t.Errorf("request deadline in %v, want more than connect+response (300s) and at most %v", got, want)
	}
}
