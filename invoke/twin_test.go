package invoke

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// answer is one scripted reply of a twinServer: an error with code (when
// not 0) or status 200 with body.
type answer struct {
	code       int
	body       string
	retryAfter string
}

// twinServer is a TLS server that records every request and answers them
// from a script, in order (the last answer repeats). Escaped paths are
// recorded as sent.
type twinServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []answer
	requests []recordedTwin
}

type recordedTwin struct {
	Method, EscapedPath, Query string
	Header                     http.Header
	Body                       []byte
	ContentLength              int64
}

func newTwinServer(t *testing.T, script ...answer) *twinServer {
	s := &twinServer{script: script}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *twinServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, recordedTwin{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body, r.ContentLength})
	a := s.script[min(len(s.requests), len(s.script))-1]
	s.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if a.code != 0 {
		e := iothub.NewError(a.code, "scripted "+iothub.ErrorName(a.code))
		e.TrackingID = "track-" + strconv.Itoa(a.code)
		w.Header().Set(iothub.ErrorCodeHeader, e.Name)
		w.WriteHeader(e.HTTPStatus)
		_, _ = w.Write(e.Body())
		return
	}
	_, _ = w.Write([]byte(a.body))
}

func (s *twinServer) recorded() []recordedTwin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedTwin(nil), s.requests...)
}

// hostName is the server's address, which its certificate covers.
func (s *twinServer) hostName() string { return s.srv.Listener.Addr().String() }

func (s *twinServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(iothub.ConnectionString{HostName: s.hostName(), SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey},
		ClientOptions{HTTPClient: s.srv.Client(), UserAgent: "methodd/test",
			Retry: RetryPolicy{MaxAttempts: 5, Base: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

const oddDoc = "{\"deviceId\" : \"dev(1)#?\",\n  \"etag\":\"AAAAAAAAAAE=\", \"n\": 1.50}"

func TestGetTwinSendsTheProtocolRequest(t *testing.T) {
	s := newTwinServer(t, answer{body: oddDoc})
	doc, err := s.client(t).GetTwin(context.Background(), "dev(1)#?", "m/x %")
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != oddDoc {
		t.Errorf("got %q, want the hub's body verbatim %q", doc, oddDoc)
	}
	rec := s.recorded()
	if len(rec) != 1 {
		t.Fatalf("got %d requests, want 1", len(rec))
	}
	r := rec[0]
	if r.Method != http.MethodGet || r.EscapedPath != "/twins/dev%281%29%23%3F/modules/m%2Fx%20%25" || r.Query != iothub.MethodsQuery {
		t.Errorf("got %s %s?%s", r.Method, r.EscapedPath, r.Query)
	}
	if len(r.Body) != 0 || r.ContentLength != 0 || r.Header.Get("Content-Type") != "" || r.Header.Get("If-Match") != "" {
		t.Errorf("GET carries a body %q (length %d), Content-Type %q or If-Match %q; want none",
			r.Body, r.ContentLength, r.Header.Get("Content-Type"), r.Header.Get("If-Match"))
	}
	checkServiceHeaders(t, r.Header, s.hostName())
}

// checkServiceHeaders checks the headers every service request carries.
func checkServiceHeaders(t *testing.T, h http.Header, hostName string) {
	t.Helper()
	if got := h.Get("User-Agent"); got != "methodd/test" {
		t.Errorf("User-Agent %q, want methodd/test", got)
	}
	if id := h.Get("Request-Id"); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("Request-Id %q is not a v4 UUID", id)
	}
	sas, err := iothub.ParseSAS(h.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sas.Verify(testKey, time.Now()); err != nil {
		t.Errorf("token does not verify with the policy key: %v", err)
	}
	if res, _ := sas.Resource(); res != hostName || sas.SKN != "iothubowner" {
		t.Errorf("token for %q skn %q, want %q iothubowner", res, sas.SKN, hostName)
	}
}

func TestUpdateTwinSendsTheProtocolRequest(t *testing.T) {
	patch := `{"tags":{"site":"a"},"properties":{"desired":{"interval":5, "old":null}}}`
	tests := []struct{ etag, wantIfMatch string }{
		{"", `"*"`},
		{"*", `"*"`},
		{"AAAAAAAAAAE=", `"AAAAAAAAAAE="`},
		{`"AAAAAAAAAAI="`, `"AAAAAAAAAAI="`},
	}
	for _, tt := range tests {
		t.Run(tt.etag, func(t *testing.T) {
			s := newTwinServer(t, answer{body: oddDoc})
			doc, err := s.client(t).UpdateTwin(context.Background(), "dev", "", []byte(patch), tt.etag)
			if err != nil {
				t.Fatal(err)
			}
			if string(doc) != oddDoc {
				t.Errorf("got %q, want the hub's body verbatim %q", doc, oddDoc)
			}
			rec := s.recorded()
			if len(rec) != 1 {
				t.Fatalf("got %d requests, want 1", len(rec))
			}
			r := rec[0]
			if r.Method != http.MethodPatch || r.EscapedPath != "/twins/dev" || r.Query != iothub.MethodsQuery {
				t.Errorf("got %s %s?%s", r.Method, r.EscapedPath, r.Query)
			}
			if got := r.Header.Get("If-Match"); got != tt.wantIfMatch {
				t.Errorf("If-Match %s, want %s", got, tt.wantIfMatch)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if string(r.Body) != patch {
				t.Errorf("body %s, want the patch verbatim %s", r.Body, patch)
			}
			checkServiceHeaders(t, r.Header, s.hostName())
		})
	}
}

func TestIfMatch(t *testing.T) {
	tests := []struct {
		etag, want string
		wantErr    bool
	}{
		{"", `"*"`, false},
		{"*", `"*"`, false},
		{`""`, `"*"`, false},
		{`"*"`, `"*"`, false},
		{"AAAAAAAAAAQ=", `"AAAAAAAAAAQ="`, false},
		{`"AAAAAAAAAAQ="`, `"AAAAAAAAAAQ="`, false},
		{`W/"x"`, "", true},
		{`a"b`, "", true},
		{`"`, "", true},
		{"a b", "", true},
		{"a\nb", "", true},
		{"a\x7fb", "", true},
	}
	for _, tt := range tests {
		got, err := IfMatch(tt.etag)
		if tt.wantErr {
			if !errors.Is(err, ErrTwinPatch) {
				t.Errorf("IfMatch(%q) = %q, %v; want an error wrapping ErrTwinPatch", tt.etag, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("IfMatch(%q) = %q, %v; want %q", tt.etag, got, err, tt.want)
		}
	}
}

func TestUpdateTwinRefusesBadInputWithoutARequest(t *testing.T) {
	s := newTwinServer(t, answer{body: `{}`})
	c := s.client(t)
	tests := []struct {
		name, device, patch, etag string
		want                      error
	}{
		{"array", "dev", `[{"tags":{}}]`, "", ErrTwinPatch},
		{"null", "dev", `null`, "", ErrTwinPatch},
		{"string", "dev", `"{}"`, "", ErrTwinPatch},
		{"truncated", "dev", `{"tags":`, "", ErrTwinPatch},
		{"two values", "dev", `{} {}`, "", ErrTwinPatch},
		{"empty", "dev", ``, "", ErrTwinPatch},
		{"bad etag", "dev", `{}`, "a\"b", ErrTwinPatch},
		{"no device", "", `{}`, "", ErrTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := c.UpdateTwin(context.Background(), tt.device, "", []byte(tt.patch), tt.etag)
			if !errors.Is(err, tt.want) || doc != nil {
				t.Errorf("got %q, %v; want nothing and an error wrapping %v", doc, err, tt.want)
			}
		})
	}
	if _, err := c.GetTwin(context.Background(), "", "m"); !errors.Is(err, ErrTarget) {
		t.Errorf("GetTwin without a device: %v, want ErrTarget", err)
	}
	if n := len(s.recorded()); n != 0 {
		t.Errorf("the hub saw %d requests, want none", n)
	}
}

func TestTwinRetries(t *testing.T) {
	ok := answer{body: `{"deviceId":"d"}`}
	tests := []struct {
		name         string
		patch        bool
		script       []answer
		wantAttempts int
		wantCode     int // 0: success
	}{
		{"get unavailable twice", false, []answer{{code: iothub.CodeServiceUnavailable}, {code: iothub.CodeServiceUnavailable}, ok}, 3, 0},
		{"get throttled with Retry-After", false, []answer{{code: iothub.CodeThrottled, retryAfter: "0"}, ok}, 2, 0},
		{"get always unavailable", false, []answer{{code: iothub.CodeServiceUnavailable}}, 5, iothub.CodeServiceUnavailable},
		{"get not found", false, []answer{{code: iothub.CodeDeviceNotFound}, ok}, 1, iothub.CodeDeviceNotFound},
		{"get server error", false, []answer{{code: iothub.CodeServerError}, ok}, 1, iothub.CodeServerError},
		{"patch throttled", true, []answer{{code: iothub.CodeThrottled}, ok}, 2, 0},
		{"patch unavailable", true, []answer{{code: iothub.CodeServiceUnavailable}, ok}, 2, 0},
		{"patch server error is not retried", true, []answer{{code: iothub.CodeServerError}, ok}, 1, iothub.CodeServerError},
		{"patch stale etag", true, []answer{{code: iothub.CodePreconditionFailed}, ok}, 1, iothub.CodePreconditionFailed},
		{"patch module not found", true, []answer{{code: iothub.CodeModuleNotFound}, ok}, 1, iothub.CodeModuleNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTwinServer(t, tt.script...)
			c := s.client(t)
			var doc json.RawMessage
			var err error
			if tt.patch {
				doc, err = c.UpdateTwin(context.Background(), "d", "m", []byte(`{}`), "AAAAAAAAAAE=")
			} else {
				doc, err = c.GetTwin(context.Background(), "d", "m")
			}
			if n := len(s.recorded()); n != tt.wantAttempts {
				t.Errorf("the hub saw %d requests, want %d", n, tt.wantAttempts)
			}
			if tt.wantCode == 0 {
				if err != nil || string(doc) != ok.body {
					t.Errorf("got %q, %v; want %s", doc, err, ok.body)
				}
				return
			}
			var he *iothub.Error
			if !errors.As(err, &he) || he.Code != tt.wantCode || he.HTTPStatus != tt.wantCode/1000 || he.TrackingID == "" {
				t.Fatalf("got %v, want an *iothub.Error %d with a tracking id", err, tt.wantCode)
			}
			if doc != nil {
				t.Errorf("got document %q with an error, want nothing", doc)
			}
		})
	}
}

// TestUpdateTwinNotRetriedAfterATransportFailure: a PATCH whose connection
// breaks may have been applied; it is made once.
func TestUpdateTwinNotRetriedAfterATransportFailure(t *testing.T) {
	var mu sync.Mutex
	seen := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen++
		mu.Unlock()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, err := NewClient(iothub.ConnectionString{HostName: srv.Listener.Addr().String(), SharedAccessKeyName: "p", SharedAccessKey: testKey},
		ClientOptions{HTTPClient: srv.Client(), Retry: RetryPolicy{MaxAttempts: 5, Base: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.UpdateTwin(context.Background(), "d", "", []byte(`{"tags":{"a":1}}`), "")
	var he *iothub.Error
	if err == nil || errors.As(err, &he) {
		t.Fatalf("got %v, want a transport error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != 1 {
		t.Errorf("the hub saw %d PATCH requests, want exactly 1", seen)
	}
}

func TestTwinMalformedDocument(t *testing.T) {
	for _, body := range []string{`[1,2]`, `not json`, ``, `{"a":1} trailing`} {
		t.Run(body, func(t *testing.T) {
			s := newTwinServer(t, answer{body: body})
			doc, err := s.client(t).GetTwin(context.Background(), "d", "")
			if !errors.Is(err, ErrMalformedTwin) || string(doc) != body {
				t.Errorf("got %q, %v; want the body and ErrMalformedTwin", doc, err)
			}
		})
	}
}

// twinDoc is what the tests read of a service-side twin document.
type twinDoc struct {
	DeviceID   string         `json:"deviceId"`
	ModuleID   string         `json:"moduleId"`
	ETag       string         `json:"etag"`
	Tags       map[string]any `json:"tags"`
	Properties struct {
		Desired map[string]any `json:"desired"`
	} `json:"properties"`
}

func decodeTwin(t *testing.T, doc []byte) twinDoc {
	t.Helper()
	var d twinDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("twin document %q: %v", doc, err)
	}
	return d
}

// localHubClient starts a local hub on loopback ports with the given
// identities and returns it with a client for its service API whose key
// is key ("" for the hub's own).
func localHubClient(t *testing.T, key string, devices ...string) (localhub.Info, *Client) {
	t.Helper()
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: devices,
	})
	if err != nil {
		t.Fatalf("start local hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	info := h.Info()
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		cs.SharedAccessKey = key
	}
	c, err := NewClient(cs, ClientOptions{RootCAs: testkit.CertPool(t, info.CAFile), Addr: info.HTTPSAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return info, c
}

// directGetTwin GETs a twin with plain net/http (not through this
// package) and returns the body byte for byte.
func directGetTwin(t *testing.T, info localhub.Info, device, module string) []byte {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+info.HTTPSAddr+iothub.TwinPath(device, module)+"?"+iothub.MethodsQuery, nil)
	req.Header.Set("Authorization", tok)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testkit.CertPool(t, info.CAFile), ServerName: "localhost"}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("direct GET: HTTP %d %s %v", resp.StatusCode, b, err)
	}
	return b
}

// escapedDevice and escapedModule are ids the local hub registers whose
// every punctuation character must be percent-escaped in a URL path.
const (
	escapedDevice = "dev(1)!'*"
	escapedModule = "m:@x'"
)

func TestTwinOnLocalHub(t *testing.T) {
	info, c := localHubClient(t, "", "dev", "gw/mod", escapedDevice+"/"+escapedModule)
	ctx := context.Background()

	t.Run("device twin, verbatim", func(t *testing.T) {
		doc, err := c.GetTwin(ctx, "dev", "")
		if err != nil {
			t.Fatal(err)
		}
		if d := decodeTwin(t, doc); d.DeviceID != "dev" || d.ModuleID != "" || d.ETag == "" {
			t.Errorf("got deviceId %q moduleId %q etag %q, want dev, none and an etag", d.DeviceID, d.ModuleID, d.ETag)
		}
		if direct := directGetTwin(t, info, "dev", ""); string(doc) != string(direct) {
			t.Errorf("got %s\nwant the hub's body %s", doc, direct)
		}
	})
	t.Run("module twin", func(t *testing.T) {
		doc, err := c.GetTwin(ctx, "gw", "mod")
		if err != nil {
			t.Fatal(err)
		}
		if d := decodeTwin(t, doc); d.DeviceID != "gw" || d.ModuleID != "mod" {
			t.Errorf("got deviceId %q moduleId %q, want gw mod", d.DeviceID, d.ModuleID)
		}
	})
	t.Run("ids that need escaping", func(t *testing.T) {
		for _, mod := range []string{"", escapedModule} {
			doc, err := c.UpdateTwin(ctx, escapedDevice, mod, []byte(`{"tags":{"escaped":true}}`), "")
			if err != nil {
				t.Fatalf("update %q/%q: %v", escapedDevice, mod, err)
			}
			got, err := c.GetTwin(ctx, escapedDevice, mod)
			if err != nil {
				t.Fatalf("get %q/%q: %v", escapedDevice, mod, err)
			}
			d := decodeTwin(t, got)
			if d.DeviceID != escapedDevice || d.ModuleID != mod || d.Tags["escaped"] != true {
				t.Errorf("got %s, want the twin of %q/%q with tags.escaped", got, escapedDevice, mod)
			}
			if string(got) != string(doc) {
				t.Errorf("GET after PATCH %s differs from the PATCH answer %s", got, doc)
			}
		}
	})
	t.Run("update, then conditional updates", func(t *testing.T) {
		before, err := c.GetTwin(ctx, "gw", "mod")
		if err != nil {
			t.Fatal(err)
		}
		oldETag := decodeTwin(t, before).ETag
		doc, err := c.UpdateTwin(ctx, "gw", "mod", []byte(`{"tags":{"site":"berlin"},"properties":{"desired":{"interval":5}}}`), oldETag)
		if err != nil {
			t.Fatal(err)
		}
		d := decodeTwin(t, doc)
		if d.Tags["site"] != "berlin" || d.Properties.Desired["interval"] != 5.0 || d.ETag == oldETag {
			t.Fatalf("update answered %s; want tags.site, desired.interval and a new etag", doc)
		}
		shown, err := c.GetTwin(ctx, "gw", "mod")
		if err != nil {
			t.Fatal(err)
		}
		if string(shown) != string(doc) {
			t.Errorf("GET after PATCH %s differs from the PATCH answer %s", shown, doc)
		}

		_, err = c.UpdateTwin(ctx, "gw", "mod", []byte(`{"properties":{"desired":{"interval":6}}}`), oldETag)
		var he *iothub.Error
		if !errors.As(err, &he) || he.HTTPStatus != http.StatusPreconditionFailed || he.Code != iothub.CodePreconditionFailed {
			t.Fatalf("stale etag: got %v, want 412 412001", err)
		}
		if after, _ := c.GetTwin(ctx, "gw", "mod"); string(after) != string(doc) {
			t.Errorf("a refused update changed the twin: %s", after)
		}
		if _, err := c.UpdateTwin(ctx, "gw", "mod", []byte(`{"properties":{"desired":{"interval":7}}}`), `"`+d.ETag+`"`); err != nil {
			t.Errorf("current etag, quoted: %v", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		tests := []struct {
			device, module string
			want           int
		}{
			{"nosuch", "", iothub.CodeDeviceNotFound},
			// Escaped as they must be, these reach the hub as one id that
			// breaks the registry's rule (%2F is part of the id, not a
			// module separator): 400004, as for every invalid id.
			{"no#such?dev", "", iothub.CodeArgumentInvalid},
			{"gw/mod", "", iothub.CodeArgumentInvalid},
			{"dev", "nomod", iothub.CodeModuleNotFound},
		}
		for _, tt := range tests {
			_, gerr := c.GetTwin(ctx, tt.device, tt.module)
			_, perr := c.UpdateTwin(ctx, tt.device, tt.module, []byte(`{"tags":{"a":1}}`), "")
			for _, err := range []error{gerr, perr} {
				var he *iothub.Error
				if !errors.As(err, &he) || he.Code != tt.want || he.TrackingID == "" {
					t.Errorf("%q/%q: got %v, want %d with a tracking id", tt.device, tt.module, err, tt.want)
				}
			}
		}
	})
}

func TestTwinWrongKeyOnLocalHub(t *testing.T) {
	_, c := localHubClient(t, "V1JPTkctS0VZLVNIT1VMRC1OT1QtTEVBSy0wMTIzNDU=", "dev")
	_, gerr := c.GetTwin(context.Background(), "dev", "")
	_, perr := c.UpdateTwin(context.Background(), "dev", "", []byte(`{"tags":{"a":1}}`), "")
	for _, err := range []error{gerr, perr} {
		var he *iothub.Error
		if !errors.As(err, &he) || he.Code != iothub.CodeUnauthorized {
			t.Errorf("got %v, want 401002", err)
		}
	}
}
