package localhub_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// notFoundBody is ASP.NET's answer to a path outside the API.
const notFoundBody = `{"Message":"No HTTP resource was found that matches the request URI."}`

// TestRoutes: the two methods routes answer POST; other HTTP methods on them
// are 405 405001 with Allow: POST; every other path is 404 with ASP.NET's
// JSON body, never a redirect or a plain-text answer. IDs are unescaped
// within their segment: an escaped "/" never splits a device from a module.
func TestRoutes(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"edge/mod1", "dev-(1)"}})
	for _, id := range []string{"edge/mod1", "dev-(1)"} {
		th.mustConnect(t, id).subscribe(t, 0, echo)
	}
	body := iothub.MethodRequest{MethodName: "m", Payload: []byte(`"p"`), ResponseTimeoutInSeconds: 10}.Encode()
	const ok = `{"status":200,"payload":"p"}`
	q := "?" + iothub.MethodsQuery
	t.Run("POST", func(t *testing.T) {
		cases := []struct {
			name, path string
			code       int // 0 = 200 with ok
		}{
			{"module route", "/twins/edge/modules/mod1/methods" + q, 0},
			{"escaped device id", "/twins/dev-%281%29/methods" + q, 0},
			{"escaped module id", "/twins/edge/modules/mod%31/methods" + q, 0},
			{"%2F in the device id is not a module separator", "/twins/edge%2Fmod1/methods" + q, iothub.CodeArgumentInvalid},
			{"%2f in the device id is not a module separator", "/twins/edge%2fmod1/methods" + q, iothub.CodeArgumentInvalid},
			{"%2F in the module id", "/twins/edge/modules/mod1%2Fx/methods" + q, iothub.CodeArgumentInvalid},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := th.post(t, tc.path, th.serviceToken(t), body)
				if tc.code != 0 {
					wantError(t, r, tc.code)
					return
				}
				if r.status != http.StatusOK || string(r.body) != ok {
					t.Errorf("got %d %s, want 200 %s", r.status, r.body, ok)
				}
			})
		}
	})
	t.Run("other HTTP methods", func(t *testing.T) {
		for _, p := range []string{"/twins/edge/methods", "/twins/edge/modules/mod1/methods"} {
			for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
				r := th.request(t, m, p+q, th.serviceToken(t), nil)
				wantError(t, r, iothub.CodeMethodNotAllowed)
				if got := r.header.Get("Allow"); got != http.MethodPost {
					t.Errorf("%s %s: Allow %q, want POST", m, p, got)
				}
			}
		}
	})
	t.Run("unknown paths", func(t *testing.T) {
		for _, p := range []string{
			"/", "/twins/edge/x", "/twins/edge/", "/twins/edge/methods/", "/twins/edge/methods/x",
			"/twins/edge/modules/mod1/x", "/twins/edge/modules/mod1/methods/", "/devices/edge/methods",
			"/twins//methods", "/twins/./methods", "/twins/x/../edge/methods", "//twins/edge/methods",
			"/twins/edge/modules//methods",
		} {
			for _, m := range []string{http.MethodPost, http.MethodGet} {
				r := th.request(t, m, p+q, th.serviceToken(t), body)
				if r.status != http.StatusNotFound || string(r.body) != notFoundBody {
					t.Errorf("%s %s: %d %q, want 404 %s", m, p, r.status, r.body, notFoundBody)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("%s %s: Content-Type %q, want JSON", m, p, ct)
				}
				if !isUUIDv4(r.header.Get("x-ms-request-id")) {
					t.Errorf("%s %s: x-ms-request-id %q, want a version-4 UUID", m, p, r.header.Get("x-ms-request-id"))
				}
			}
		}
	})
}
