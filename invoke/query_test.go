package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// queryPageAnswer is one scripted answer of a queryServer: an error with
// code (when not 0), or 200 with body and, when next is set, that
// x-ms-continuation.
type queryPageAnswer struct {
	code int
	body string
	next string
}

// queryServer answers POST /devices/query from a script, in order (the
// last answer repeats), and records every request.
type queryServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []queryPageAnswer
	requests []recordedTwin
}

func newQueryServer(t *testing.T, script ...queryPageAnswer) *queryServer {
	s := &queryServer{script: script}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *queryServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, recordedTwin{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body, r.ContentLength})
	a := s.script[min(len(s.requests), len(s.script))-1]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if a.code != 0 {
		e := iothub.NewError(a.code, "scripted "+iothub.ErrorName(a.code))
		w.WriteHeader(e.HTTPStatus)
		_, _ = w.Write(e.Body())
		return
	}
	w.Header().Set("x-ms-item-type", "twin")
	if a.next != "" {
		w.Header().Set("x-ms-continuation", a.next)
	}
	_, _ = w.Write([]byte(a.body))
}

func (s *queryServer) recorded() []recordedTwin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedTwin(nil), s.requests...)
}

func (s *queryServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(iothub.ConnectionString{HostName: s.srv.Listener.Addr().String(), SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey},
		ClientOptions{HTTPClient: s.srv.Client(), UserAgent: "methodd/test",
			Retry: RetryPolicy{MaxAttempts: 5, Base: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// collect runs Query and returns the items as strings.
func collect(t *testing.T, c *Client, sql string, pageSize int) ([]string, error) {
	t.Helper()
	var items []string
	err := c.Query(context.Background(), sql, pageSize, func(it json.RawMessage) error {
		items = append(items, string(it))
		return nil
	})
	return items, err
}

// TestQueryFollowsContinuation: the request is the protocol's (POST
// /devices/query, {"query":…}, x-ms-max-item-count), tokens are sent back
// as x-ms-continuation until a page comes without one, and items are the
// hub's bytes verbatim.
func TestQueryFollowsContinuation(t *testing.T) {
	s := newQueryServer(t,
		queryPageAnswer{body: `[{"deviceId" : "a", "n": 1.50}]`, next: "tok-1"},
		queryPageAnswer{body: "[\n{\"deviceId\":\"b\"},{\"deviceId\":\"c\"}\n]", next: "tok-2"},
		queryPageAnswer{body: `[]`},
	)
	sql := `SELECT * FROM devices WHERE tags.site = "a\b"`
	items, err := collect(t, s.client(t), sql, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(items, "|"), `{"deviceId" : "a", "n": 1.50}|{"deviceId":"b"}|{"deviceId":"c"}`; got != want {
		t.Errorf("items %s, want %s", got, want)
	}
	rec := s.recorded()
	if len(rec) != 3 {
		t.Fatalf("got %d requests, want 3", len(rec))
	}
	for i, r := range rec {
		if r.Method != http.MethodPost || r.EscapedPath != "/devices/query" || r.Query != iothub.MethodsQuery {
			t.Errorf("request %d: %s %s?%s, want POST /devices/query?%s", i, r.Method, r.EscapedPath, r.Query, iothub.MethodsQuery)
		}
		var b struct{ Query string }
		if err := json.Unmarshal(r.Body, &b); err != nil || b.Query != sql {
			t.Errorf("request %d: body %s, want {\"query\":%q}", i, r.Body, sql)
		}
		if got := r.Header.Get("x-ms-max-item-count"); got != "2" {
			t.Errorf("request %d: x-ms-max-item-count %q, want 2", i, got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
			t.Errorf("request %d: Content-Type %q", i, got)
		}
		checkServiceHeaders(t, r.Header, s.srv.Listener.Addr().String())
		want := []string{"", "tok-1", "tok-2"}[i]
		if got, ok := r.Header["X-Ms-Continuation"]; (want == "") != !ok || (ok && got[0] != want) {
			t.Errorf("request %d: x-ms-continuation %q, want %q", i, got, want)
		}
	}
}

// TestQueryDefaultPageSizeSendsNoHeader: page size 0 leaves the choice to
// the hub.
func TestQueryDefaultPageSizeSendsNoHeader(t *testing.T) {
	s := newQueryServer(t, queryPageAnswer{body: `[]`})
	items, err := collect(t, s.client(t), "SELECT * FROM devices", 0)
	if err != nil || len(items) != 0 {
		t.Fatalf("items %q, err %v; want none and no error", items, err)
	}
	if _, ok := s.recorded()[0].Header["X-Ms-Max-Item-Count"]; ok {
		t.Error("x-ms-max-item-count sent for page size 0, want none")
	}
}

// TestQueryErrors: refused input sends nothing; hub errors are
// *iothub.Error; malformed pages and a repeated token are errors; an error
// of the callback stops the query.
func TestQueryErrors(t *testing.T) {
	stop := errors.New("stop")
	for _, tc := range []struct {
		name     string
		script   []queryPageAnswer
		sql      string
		pageSize int
		each     func(json.RawMessage) error
		want     func(error) bool
		requests int
	}{
		{"empty query", nil, "", 0, nil, func(err error) bool { return errors.Is(err, ErrQuery) }, 0},
		{"page size 1001", nil, "SELECT * FROM devices", 1001, nil, func(err error) bool { return errors.Is(err, ErrQuery) }, 0},
		{"negative page size", nil, "SELECT * FROM devices", -1, nil, func(err error) bool { return errors.Is(err, ErrQuery) }, 0},
		{"syntax error", []queryPageAnswer{{code: iothub.CodeArgumentInvalid}}, "SELECT", 0, nil, isHubError(400), 1},
		{"unauthorized", []queryPageAnswer{{code: iothub.CodeUnauthorized}}, "SELECT * FROM devices", 0, nil, isHubError(401), 1},
		{"throttled then ok", []queryPageAnswer{{code: iothub.CodeThrottled}, {body: `[]`}}, "SELECT * FROM devices", 0, nil, func(err error) bool { return err == nil }, 2},
		{"error on page 2", []queryPageAnswer{{body: `[{}]`, next: "t"}, {code: iothub.CodeServerError}}, "SELECT * FROM devices", 0, nil, isHubError(500), 2},
		{"object body", []queryPageAnswer{{body: `{"items":[]}`}}, "SELECT * FROM devices", 0, nil, func(err error) bool { return errors.Is(err, ErrMalformedQueryPage) }, 1},
		{"not JSON", []queryPageAnswer{{body: `[{`}}, "SELECT * FROM devices", 0, nil, func(err error) bool { return errors.Is(err, ErrMalformedQueryPage) }, 1},
		{"repeated token", []queryPageAnswer{{body: `[{}]`, next: "same"}}, "SELECT * FROM devices", 0, nil, func(err error) bool { return errors.Is(err, ErrMalformedQueryPage) }, 2},
		{"callback error", []queryPageAnswer{{body: `[{},{}]`, next: "t"}}, "SELECT * FROM devices", 0, func(json.RawMessage) error { return stop }, func(err error) bool { return err == stop }, 1}, //nolint:errorlint // the contract is the callback's error returned unchanged, not wrapped
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := tc.script
			if script == nil {
				script = []queryPageAnswer{{body: `[]`}}
			}
			s := newQueryServer(t, script...)
			each := tc.each
			if each == nil {
				each = func(json.RawMessage) error { return nil }
			}
			err := s.client(t).Query(context.Background(), tc.sql, tc.pageSize, each)
			if !tc.want(err) {
				t.Errorf("error %v (%T), not the one wanted", err, err)
			}
			if got := len(s.recorded()); got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
		})
	}
}

// isHubError wants a *iothub.Error with that HTTP status.
func isHubError(status int) func(error) bool {
	return func(err error) bool {
		var he *iothub.Error
		return errors.As(err, &he) && he.HTTPStatus == status
	}
}

// TestQueryDeviceIDs: the query sent for a condition, and the ids read
// from the twins.
func TestQueryDeviceIDs(t *testing.T) {
	for _, tc := range []struct{ where, sql string }{
		{"tags.site = 'a'", "SELECT * FROM devices WHERE tags.site = 'a'"},
		{"", "SELECT * FROM devices"},
		{" * ", "SELECT * FROM devices"},
	} {
		t.Run(fmt.Sprintf("%q", tc.where), func(t *testing.T) {
			s := newQueryServer(t, queryPageAnswer{body: `[{"deviceId":"a"}]`, next: "t"}, queryPageAnswer{body: `[{"deviceId":"b","tags":{}}]`})
			ids, err := s.client(t).QueryDeviceIDs(context.Background(), tc.where)
			if err != nil || strings.Join(ids, ",") != "a,b" {
				t.Fatalf("ids %q, err %v; want [a b]", ids, err)
			}
			r := s.recorded()[0]
			var b struct{ Query string }
			if err := json.Unmarshal(r.Body, &b); err != nil || b.Query != tc.sql {
				t.Errorf("body %s, want the query %q", r.Body, tc.sql)
			}
			if got := r.Header.Get("x-ms-max-item-count"); got != "1000" {
				t.Errorf("x-ms-max-item-count %q, want 1000", got)
			}
		})
	}
	s := newQueryServer(t, queryPageAnswer{body: `[{"moduleId":"m"}]`})
	if _, err := s.client(t).QueryDeviceIDs(context.Background(), ""); !errors.Is(err, ErrMalformedQueryPage) {
		t.Errorf("an item without deviceId: error %v, want ErrMalformedQueryPage", err)
	}
}

// TestQueryOnLocalHub: Query pages through the local hub's answer with
// every page size, and QueryDeviceIDs selects by tags; a syntax error is
// the hub's 400 with the position.
func TestQueryOnLocalHub(t *testing.T) {
	_, c := localHubClient(t, "", "lq-1", "lq-2", "lq-3", "lq-4")
	ctx := context.Background()
	for _, id := range []string{"lq-1", "lq-3", "lq-4"} {
		if _, err := c.UpdateTwin(ctx, id, "", []byte(`{"tags":{"site":"a"}}`), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []int{0, 1, 2, 3, 1000} {
		var ids []string
		err := c.Query(ctx, "SELECT * FROM devices WHERE tags.site = 'a'", size, func(it json.RawMessage) error {
			var tw struct{ DeviceID string }
			if err := json.Unmarshal(it, &tw); err != nil {
				return err
			}
			ids = append(ids, tw.DeviceID)
			return nil
		})
		if err != nil || strings.Join(ids, ",") != "lq-1,lq-3,lq-4" {
			t.Errorf("page size %d: ids %q, err %v; want lq-1,lq-3,lq-4", size, ids, err)
		}
	}
	if ids, err := c.QueryDeviceIDs(ctx, "tags.site = 'a' AND deviceId != 'lq-3'"); err != nil || strings.Join(ids, ",") != "lq-1,lq-4" {
		t.Errorf("QueryDeviceIDs: %q, %v; want lq-1,lq-4", ids, err)
	}
	if ids, err := c.QueryDeviceIDs(ctx, "*"); err != nil || len(ids) != 4 {
		t.Errorf("QueryDeviceIDs(*): %q, %v; want 4 devices", ids, err)
	}
	_, err := c.QueryDeviceIDs(ctx, "tags.site = ")
	var he *iothub.Error
	if !errors.As(err, &he) || he.HTTPStatus != 400 || !strings.Contains(he.Message, "position 40") {
		t.Errorf("syntax error: %v, want a 400 naming position 40", err)
	}
}
