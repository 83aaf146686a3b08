package invoke

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// testKey is the policy key of the fake hub: recognisable, so leak tests can
// look for it.
const testKey = "U0VDUkVULUtFWS1ET05ULUxFQUstMDEyMzQ1Njc4OWFi" // base64 of "SECRET-KEY-DONT-LEAK-0123456789ab"

// fakeHub mimics the IoT Hub method REST API over TLS. Its behaviour is
// driven by the method name: "echo" replies 200 with the payload, "fail500"
// makes the device reply 500, "offline" is 404103, "slow" is 504101,
// "throttle" answers 429 the first two times, "unavailable" always 503,
// "server500" is an HTTP 500 ServerError, "legacy" a 404103 in the legacy
// error body format, "garbage" a 200 with a non-JSON body.
type fakeHub struct {
	t   *testing.T
	srv *httptest.Server

	mu                    sync.Mutex
	requests              []recorded
	calls                 map[string]int // per method name
	inflight, maxInflight int
	conns                 int // TCP connections accepted
}

type recorded struct {
	Path, Query string
	Header      http.Header
	Body        []byte
}

func newFakeHub(t *testing.T) *fakeHub {
	h := &fakeHub{t: t, calls: map[string]int{}}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	h.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			h.mu.Lock()
			h.conns++
			h.mu.Unlock()
		}
	}
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	return h
}

// connectionString is the hub's service connection string; its HostName is
// example.com:PORT (the name in httptest's certificate), dialled at the
// listener's address through ClientOptions.Addr.
func (h *fakeHub) connectionString() iothub.ConnectionString {
	_, port, _ := strings.Cut(h.srv.Listener.Addr().String(), ":")
	return iothub.ConnectionString{HostName: "example.com:" + port, SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey}
}

func (h *fakeHub) options() ClientOptions {
	pool := x509.NewCertPool()
	pool.AddCert(h.srv.Certificate())
	return ClientOptions{RootCAs: pool, Addr: h.srv.Listener.Addr().String(),
		Retry: RetryPolicy{MaxAttempts: 5, Base: time.Millisecond, Max: 5 * time.Millisecond}}
}

func (h *fakeHub) client(t *testing.T) *Client {
	c, err := NewClient(h.connectionString(), h.options())
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (h *fakeHub) recorded() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.requests...)
}

func (h *fakeHub) fail(w http.ResponseWriter, code int) {
	e := iothub.NewError(code, "fake "+iothub.ErrorName(code))
	e.TrackingID = "track-" + iothub.ErrorName(code)
	w.Header().Set(iothub.ErrorCodeHeader, e.Name)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.Body())
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.requests = append(h.requests, recorded{r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	h.inflight++
	h.maxInflight = max(h.maxInflight, h.inflight)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.inflight--
		h.mu.Unlock()
	}()

	sas, err := iothub.ParseSAS(r.Header.Get("Authorization"))
	if err != nil || sas.SKN != "iothubowner" || sas.Verify(testKey, time.Now()) != nil {
		h.fail(w, iothub.CodeUnauthorized)
		return
	}
	req, err := iothub.DecodeMethodRequest(body)
	if err != nil {
		var he *iothub.Error
		if !errors.As(err, &he) {
			h.t.Errorf("fake hub: DecodeMethodRequest: %v is not an *iothub.Error", err)
			he = iothub.NewError(iothub.CodeServerError, "")
		}
		h.fail(w, he.Code)
		return
	}
	h.mu.Lock()
	h.calls[req.MethodName]++
	n := h.calls[req.MethodName]
	h.mu.Unlock()
	ok := func(status int, payload []byte) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(iothub.EncodeMethodResult(status, payload))
	}
	switch req.MethodName {
	case "echo":
		ok(200, req.Payload)
	case "fail500":
		ok(500, []byte(`{"error":"boom"}`))
	case "offline":
		h.fail(w, iothub.CodeDeviceNotOnline)
	case "slow":
		h.fail(w, iothub.CodeGatewayTimeout)
	case "throttle":
		if n <= 2 {
			h.fail(w, iothub.CodeThrottled)
			return
		}
		ok(200, []byte(`"finally"`))
	case "unavailable":
		h.fail(w, iothub.CodeServiceUnavailable)
	case "server500":
		h.fail(w, iothub.CodeServerError)
	case "legacy":
		w.Header().Set(iothub.ErrorCodeHeader, "DeviceNotOnline")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"Message":"ErrorCode:DeviceNotOnline;Timed out waiting for device to connect.","ExceptionMessage":"Tracking ID:66b8d59066b24105a49bffcbde18495d-G:5-TimeStamp:01/18/2017 08:11:45"}`))
	case "garbage":
		_, _ = w.Write([]byte(`{"status":200,"payload":{'a': 1}}`))
	default:
		h.t.Errorf("fake hub: unexpected method %q", req.MethodName)
		h.fail(w, iothub.CodeArgumentInvalid)
	}
}

func (h *fakeHub) callCount(method string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[method]
}

// decodeBody is a helper for assertions on the request body.
func decodeBody(t *testing.T, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("request body %q: %v", b, err)
	}
	return m
}
