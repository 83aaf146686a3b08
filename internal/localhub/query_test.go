package localhub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// queryBody is the body of POST /devices/query for sql.
func queryBody(sql string) []byte {
	b, _ := json.Marshal(map[string]string{"query": sql})
	return b
}

// query sends one page request; hdr are header name/value pairs.
func (th *testHub) query(t testing.TB, sql string, hdr ...string) response {
	t.Helper()
	return th.call(t, http.MethodPost, "/devices/query", queryBody(sql), hdr...)
}

// queryItems checks a successful query answer (200, JSON content type,
// the item type, a bare JSON array) and returns its items.
func queryItems(t testing.TB, r response, itemType string) []twinDoc {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q, want application/json; charset=utf-8", ct)
	}
	if got := r.header.Get("x-ms-item-type"); got != itemType {
		t.Errorf("x-ms-item-type %q, want %q", got, itemType)
	}
	var items []twinDoc
	if !strings.HasPrefix(string(r.body), "[") || json.Unmarshal(r.body, &items) != nil {
		t.Fatalf("body %s, want a bare JSON array", r.body)
	}
	return items
}

// idsOf lists the items' client ids, in order.
func idsOf(items []twinDoc) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.DeviceID
		if it.ModuleID != nil {
			out[i] += "/" + *it.ModuleID
		}
	}
	return out
}

// queryAll pages through sql with page size n and returns every page's
// client ids; it fails on more than limit pages (a token that never ends).
func (th *testHub) queryAll(t testing.TB, sql string, n, limit int) [][]string {
	t.Helper()
	var pages [][]string
	token := ""
	for range limit {
		hdr := []string{"x-ms-max-item-count", fmt.Sprint(n)}
		if token != "" {
			hdr = append(hdr, "x-ms-continuation", token)
		}
		r := th.query(t, sql, hdr...)
		pages = append(pages, idsOf(queryItems(t, r, "twin")))
		vals, more := r.header["X-Ms-Continuation"]
		if !more {
			return pages
		}
		if len(vals) != 1 || vals[0] == "" {
			t.Fatalf("x-ms-continuation %q: want one non-empty token or no header", vals)
		}
		token = vals[0]
	}
	t.Fatalf("more than %d pages: %v", limit, pages)
	return nil
}

// fleetHub is a hub with devices whose twins differ in tags, desired and
// reported properties, and a module.
func fleetHub(t *testing.T) *testHub {
	t.Helper()
	th := startHub(t, localhub.Options{Devices: []string{"q-3", "q-1", "q-2", "p-1", "q-1/mod1", "q-2/mod1", "q-2/mod2"}})
	for _, p := range []struct{ id, patch string }{
		{"q-1", `{"tags":{"fleet":"q","site":{"city":"berlin"}},"properties":{"desired":{"interval":5}}}`},
		{"q-2", `{"tags":{"fleet":"q","site":{"city":"paris"}},"properties":{"desired":{"interval":30}}}`},
		{"q-3", `{"tags":{"fleet":"q"}}`},
		{"p-1", `{"tags":{"fleet":"p"}}`},
		{"q-1/mod1", `{"tags":{"role":"agent"}}`},
	} {
		device, module := iothub.SplitClientID(p.id)
		wantTwin(t, th.call(t, http.MethodPatch, iothub.TwinPath(device, module), []byte(p.patch)))
	}
	d := th.mustConnect(t, "q-2")
	got := twinClient(t, d, false)
	publish(t, d, iothub.TwinReportedTopic("r1"), `{"fw":"2.1","battery":40}`)
	if m := next(t, got); !strings.Contains(m.topic, "/res/204/") {
		t.Fatalf("reported update answered %s", m.topic)
	}
	return th
}

// TestQueryFilters: conditions on deviceId, tags, desired and reported
// properties select the right device twins, in client id order, each the
// full service twin; modules are their own source.
func TestQueryFilters(t *testing.T) {
	th := fleetHub(t)
	for _, tc := range []struct {
		sql  string
		want []string
	}{
		{"SELECT * FROM devices", []string{"p-1", "q-1", "q-2", "q-3"}},
		{"SELECT * FROM devices WHERE tags.fleet = 'q'", []string{"q-1", "q-2", "q-3"}},
		{"select * from devices where tags.site.city = 'berlin' or tags.site.city = 'paris'", []string{"q-1", "q-2"}},
		{"SELECT * FROM devices WHERE properties.desired.interval >= 10", []string{"q-2"}},
		{"SELECT * FROM devices WHERE properties.reported.fw = '2.1' AND properties.reported.battery < 50", []string{"q-2"}},
		{"SELECT * FROM devices WHERE deviceId IN ['p-1', 'q-3', 'nobody']", []string{"p-1", "q-3"}},
		{"SELECT * FROM devices WHERE NOT (tags.fleet = 'q')", []string{"p-1"}},
		{"SELECT * FROM devices WHERE IS_DEFINED(tags.site)", []string{"q-1", "q-2"}},
		{"SELECT * FROM devices WHERE tags.fleet = 'none'", []string{}},
		{"SELECT * FROM devices.modules", []string{"q-1/mod1", "q-2/mod1", "q-2/mod2"}},
		{"SELECT * FROM devices.modules WHERE tags.role = 'agent'", []string{"q-1/mod1"}},
		{"SELECT * FROM devices.modules WHERE deviceId = 'q-2'", []string{"q-2/mod1", "q-2/mod2"}},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			r := th.query(t, tc.sql)
			items := queryItems(t, r, "twin")
			if got := idsOf(items); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if _, ok := r.header["X-Ms-Continuation"]; ok {
				t.Errorf("x-ms-continuation %q on the only page", r.header.Get("x-ms-continuation"))
			}
			for _, it := range items {
				if it.ETag == "" || it.Status != "enabled" || it.Properties.Desired["$version"] == nil || it.Properties.Reported["$version"] == nil {
					t.Errorf("item %+v is not a full twin", it)
				}
			}
		})
	}
	t.Run("devices.jobs", func(t *testing.T) {
		r := th.query(t, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'no-such-job'")
		if items := queryItems(t, r, "deviceJob"); len(items) != 0 || string(r.body) != "[]" {
			t.Errorf("body %s, want []", r.body)
		}
	})
	// An item is the twin GET /twins answers, byte for byte.
	r := th.query(t, "SELECT * FROM devices WHERE deviceId = 'q-2'")
	var raw []json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw) != 1 {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if twin := th.call(t, http.MethodGet, iothub.TwinPath("q-2", ""), nil); string(raw[0]) != string(twin.body) {
		t.Errorf("query item\n%s\nGET twin\n%s", raw[0], twin.body)
	}
}

// TestQueryPaging: page size 1 over three matches is three pages, the last
// without x-ms-continuation; page size 3 (a full last page) and 1000 are one
// page without it; the default page size is 100.
func TestQueryPaging(t *testing.T) {
	th := fleetHub(t)
	const sql = "SELECT * FROM devices WHERE tags.fleet = 'q'"
	for _, tc := range []struct {
		size int
		want [][]string
	}{
		{1, [][]string{{"q-1"}, {"q-2"}, {"q-3"}}},
		{2, [][]string{{"q-1", "q-2"}, {"q-3"}}},
		{3, [][]string{{"q-1", "q-2", "q-3"}}},
		{1000, [][]string{{"q-1", "q-2", "q-3"}}},
	} {
		t.Run(fmt.Sprint("page size ", tc.size), func(t *testing.T) {
			if got := th.queryAll(t, sql, tc.size, 10); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("pages %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("default page size", func(t *testing.T) {
		ids := make([]string, 0, localhub.DefaultQueryPageSize+1)
		for i := range localhub.DefaultQueryPageSize + 1 {
			ids = append(ids, fmt.Sprintf("d-%03d", i))
		}
		big := startHub(t, localhub.Options{Devices: ids})
		r := big.query(t, "SELECT * FROM devices")
		if got := len(queryItems(t, r, "twin")); got != localhub.DefaultQueryPageSize || r.header.Get("x-ms-continuation") == "" {
			t.Fatalf("first page: %d items, continuation %q; want %d and a token", got, r.header.Get("x-ms-continuation"), localhub.DefaultQueryPageSize)
		}
		r = big.query(t, "SELECT * FROM devices", "x-ms-continuation", r.header.Get("x-ms-continuation"))
		if got := idsOf(queryItems(t, r, "twin")); !slices.Equal(got, ids[localhub.DefaultQueryPageSize:]) {
			t.Errorf("second page %q, want %q", got, ids[localhub.DefaultQueryPageSize:])
		}
		if _, ok := r.header["X-Ms-Continuation"]; ok {
			t.Error("x-ms-continuation on the last page")
		}
	})
	t.Run("a device added between pages", func(t *testing.T) {
		r := th.query(t, sql, "x-ms-max-item-count", "2")
		tok := r.header.Get("x-ms-continuation")
		wantIdentity(t, th.call(t, http.MethodPut, "/devices/q-0", []byte(`{"deviceId":"q-0"}`)))
		wantTwin(t, th.call(t, http.MethodPatch, iothub.TwinPath("q-0", ""), []byte(`{"tags":{"fleet":"q"}}`)))
		r = th.query(t, sql, "x-ms-max-item-count", "2", "x-ms-continuation", tok)
		if got := idsOf(queryItems(t, r, "twin")); !slices.Equal(got, []string{"q-3"}) {
			t.Errorf("second page %q, want [q-3]: a device sorted before the token neither repeats nor shifts a page", got)
		}
	})
}

// TestQueryErrors: refused queries answer 400 in body format B (the twin
// routes'), with the position of a syntax error; every other route rule
// (auth, api-version, body) holds.
func TestQueryErrors(t *testing.T) {
	th := fleetHub(t)
	first := th.query(t, "SELECT * FROM devices", "x-ms-max-item-count", "1")
	token := first.header.Get("x-ms-continuation")
	if token == "" {
		t.Fatal("no continuation token on a first page of 1 out of 4")
	}
	for _, tc := range []struct {
		name string
		body string
		hdr  []string
		code int
		text string
	}{
		{"syntax error", string(queryBody("SELECT * FROM devices WHERE tags.a = ")), nil, iothub.CodeArgumentInvalid, "position 37"},
		{"missing FROM", string(queryBody("SELECT * devices")), nil, iothub.CodeArgumentInvalid, "position 9"},
		{"unknown source", string(queryBody("SELECT * FROM things")), nil, iothub.CodeArgumentInvalid, "position"},
		{"page size 0", string(queryBody("SELECT * FROM devices")), []string{"x-ms-max-item-count", "0"}, iothub.CodeArgumentInvalid, "x-ms-max-item-count"},
		{"page size 1001", string(queryBody("SELECT * FROM devices")), []string{"x-ms-max-item-count", "1001"}, iothub.CodeArgumentInvalid, "1000"},
		{"page size not a number", string(queryBody("SELECT * FROM devices")), []string{"x-ms-max-item-count", "ten"}, iothub.CodeArgumentInvalid, "ten"},
		{"token of another query", string(queryBody("SELECT * FROM devices WHERE tags.fleet = 'q'")), []string{"x-ms-continuation", token}, iothub.CodeArgumentInvalid, "another query"},
		{"malformed token", string(queryBody("SELECT * FROM devices")), []string{"x-ms-continuation", "!!not base64"}, iothub.CodeArgumentInvalid, "malformed"},
		{"no query", `{}`, nil, iothub.CodeArgumentInvalid, "missing"},
		{"empty query", `{"query":"  "}`, nil, iothub.CodeArgumentInvalid, "missing"},
		{"not JSON", `SELECT * FROM devices`, nil, iothub.CodeIotHubFormatError, "JSON"},
		{"query not a string", `{"query":1}`, nil, iothub.CodeIotHubFormatError, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := th.call(t, http.MethodPost, "/devices/query", []byte(tc.body), tc.hdr...)
			wantLegacyError(t, r, tc.code)
			if e := iothub.ParseError(r.status, "", r.body); !strings.Contains(e.Message, tc.text) {
				t.Errorf("message %q lacks %q", e.Message, tc.text)
			}
		})
	}
	t.Run("the token pages its own query", func(t *testing.T) {
		r := th.query(t, "SELECT * FROM devices", "x-ms-max-item-count", "1", "x-ms-continuation", token)
		if got := idsOf(queryItems(t, r, "twin")); !slices.Equal(got, []string{"q-1"}) {
			t.Errorf("second page %q, want [q-1]", got)
		}
	})
	t.Run("unauthorized", func(t *testing.T) {
		wantLegacyError(t, th.post(t, "/devices/query?"+iothub.MethodsQuery, "SharedAccessSignature sr=x&sig=y&se=1&skn=iothubowner", queryBody("SELECT * FROM devices")), iothub.CodeUnauthorized)
	})
	t.Run("no api-version", func(t *testing.T) {
		wantLegacyError(t, th.post(t, "/devices/query", th.serviceToken(t), queryBody("SELECT * FROM devices")), iothub.CodeArgumentInvalid)
	})
	t.Run("service policy", func(t *testing.T) {
		cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
		tok, err := iothub.Sign(cs.HostName, th.policyKey(t, "service"), "service", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if r := th.post(t, "/devices/query?"+iothub.MethodsQuery, tok, queryBody("SELECT * FROM devices")); r.status != http.StatusOK {
			t.Errorf("service policy: status %d %s, want 200", r.status, r.body)
		}
	})
	t.Run("GET is the registry's", func(t *testing.T) {
		wantLegacyError(t, th.call(t, http.MethodGet, "/devices/query", nil), iothub.CodeDeviceNotFound)
	})
}
