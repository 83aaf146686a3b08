package localhub

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// FuzzRESTRequest feeds raw HTTP requests (request line, path, query,
// body; optionally with a valid service SAS) through the REST request
// reader and router: nothing panics, nothing answers 500, and every id a
// route accepts satisfies the registry's rule (no "/", so an escaped %2F
// never becomes a module separator).
func FuzzRESTRequest(f *testing.F) {
	h, err := Start(context.Background(), Options{Dir: f.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: []string{"dev1", "dev1/mod1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close() })
	key, _ := h.reg.policyKey(policyOwner)
	sas, err := iothub.Sign(HostName, key, policyOwner, time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	a := newRESTHandler(h).(*restAPI)
	var accepted []string
	a.onIDs = func(device, module string) { accepted = append(accepted, device, module) }
	for _, s := range []struct {
		method, target, body string
	}{
		{"POST", "/twins/dev1/methods?api-version=2021-04-12", `{"methodName":"m","payload":null}`},
		{"POST", "/twins/dev1%2Fmod1/methods?api-version=2021-04-12", `{"methodName":"m"}`},
		{"POST", "/twins/dev1/modules/mod1/methods?api-version=2021-04-12", `{"methodName":"m"}`},
		{"GET", "/twins/%2E%2E?api-version=2021-04-12", ""},
		{"GET", "/twins/dev1/modules/..?api-version=2021-04-12", ""},
		{"PATCH", "/twins/dev1?api-version=2021-04-12", `{"properties":{"desired":{"a":1}}}`},
		{"PUT", "/devices/new1?api-version=2021-04-12", `{"deviceId":"new1"}`},
		{"PUT", "/devices/" + strings.Repeat("a", 129) + "?api-version=2021-04-12", `{}`},
		{"DELETE", "/devices/dev1/modules/m%00?api-version=2021-04-12", ""},
		{"GET", "/devices/dev1/modules?api-version=2021-04-12", ""},
		{"POST", "/devices/query?api-version=2021-04-12", `{"query":"SELECT * FROM devices"}`},
		{"PUT", "/jobs/v2/j1?api-version=2021-04-12", `{"jobId":"j1","type":"scheduleDeviceMethod"}`},
	} {
		f.Add(s.method, s.target, []byte(s.body), true)
		f.Add(s.method, s.target, []byte(s.body), false)
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte, authorize bool) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		if authorize {
			raw += "Authorization: " + sas + "\r\n"
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n" + string(body))))
		if err != nil {
			return // not a request the server would read
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		accepted = accepted[:0]
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r.WithContext(ctx))
		if w.Code == http.StatusInternalServerError {
			t.Errorf("%s %s: 500 %s", method, target, w.Body.Bytes())
		}
		for i := 0; i+1 < len(accepted); i += 2 {
			device, module := accepted[i], accepted[i+1]
			if !validID(device) || (module != "" && !validID(module)) || bytes.ContainsRune([]byte(device+module), '/') {
				t.Errorf("%s %s: accepted ids %q, %q", method, target, device, module)
			}
		}
	})
}
