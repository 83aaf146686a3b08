package localhub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

const jsonContentType = "application/json; charset=utf-8"

// restAPI serves the service REST API, in three route families:
//
//	POST /twins/{device}/methods                          (methods, §5)
//	POST /twins/{device}/modules/{module}/methods
//	GET, PATCH, PUT /twins/{device}                       (twins, fleet §2)
//	GET, PATCH, PUT /twins/{device}/modules/{module}
//	GET, PUT, DELETE /devices/{device}                    (registry)
//	GET /devices/{device}/modules
//	GET, PUT, DELETE /devices/{device}/modules/{module}
//
// IDs are path-unescaped, each within its own segment: an escaped "/"
// (%2F) belongs to the ID, it never separates a device from a module.
// Every id is checked with the registry's rule (validIdentityPart; "."
// and ".." are refused too) on every route, after authorization: an id
// outside it, "dev%2Fmod" included, is 400004 ArgumentInvalid (no
// identity can have such an id, so the real hub's answer, 400 or 404,
// was not observable; 400 tells the caller the request is wrong). The
// api-version query parameter is required (any value; 400004 without it,
// as the real hub answers 400). Authorization is a service SAS whose skn
// names a policy with the permission the route needs, verified with that
// policy's key, whose resource covers the hub host with or without a port:
// ServiceConnect (iothubowner or service) for methods and twins, registry
// read/write (iothubowner) for the registry; anything else is 401 401002.
// Other HTTP methods on these paths are 405 405001 with an Allow header;
// every other path, including a non-canonical one ("//", "/./", "/../"),
// is 404 with ASP.NET's body.
//
// Errors of the methods routes have the current body format (A); those of
// the twin and registry routes the legacy format (B), the only one the
// Node SDK maps to its DeviceNotFoundError, DeviceAlreadyExistsError and
// InvalidEtagError messages (fleet reference §2.3).
type restAPI struct {
	h     *Hub
	mux   *http.ServeMux
	onIDs func(device, module string) // tests: called with every id pair pathIDs accepts
}

// permission is what a route family needs of the caller's policy.
type permission int

const (
	serviceConnect    permission = iota + 1 // methods, twins: iothubowner, service
	registryReadWrite                       // identity registry: iothubowner
)

// grantedTo reports whether the hub's policy named policy has p.
func (p permission) grantedTo(policy string) bool {
	return policy == policyOwner || (p == serviceConnect && policy == policyService)
}

// newRESTHandler returns the service API's handler.
func newRESTHandler(h *Hub) http.Handler {
	a := &restAPI{h: h, mux: http.NewServeMux()}
	a.route("/twins/{device}/methods", a.fail, endpoint{http.MethodPost, a.invoke})
	a.route("/twins/{device}/modules/{module}/methods", a.fail, endpoint{http.MethodPost, a.invoke})
	a.routeTwins()
	a.routeRegistry()
	a.routeQuery()
	a.routeJobs()
	// "/" catches every other path, so that ServeMux's plain-text 404
	// never answers.
	a.mux.HandleFunc("/", a.notFound)
	return a
}

// endpoint is one HTTP method's handler on a path.
type endpoint struct {
	method  string
	handler http.HandlerFunc
}

// route serves each endpoint on path and answers the other HTTP methods
// with 405 405001, listing the allowed ones, in the family's error format.
func (a *restAPI) route(path string, fail errorWriter, eps ...endpoint) {
	allow := make([]string, len(eps))
	for i, ep := range eps {
		a.mux.HandleFunc(ep.method+" "+path, ep.handler)
		allow[i] = ep.method
	}
	a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		fail(w, r, iothub.NewError(iothub.CodeMethodNotAllowed, "The requested resource does not support http method '"+r.Method+"'."))
	})
}

// errorWriter writes an error response in one body format.
type errorWriter func(http.ResponseWriter, *http.Request, error)

// ServeHTTP routes r. Non-canonical paths are answered here: ServeMux
// would redirect them to their cleaned form.
func (a *restAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.bodyDeadline(w)
	if p := r.URL.EscapedPath(); cleanPath(p) != p {
		a.notFound(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// cleanPath is ServeMux's canonical form of p: rooted, path.Clean'ed, with
// a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// invoke serves both methods routes; the module is "" on the device route.
// Authorization, then the ids, then the body: a refused request's body is
// never read.
func (a *restAPI) invoke(w http.ResponseWriter, r *http.Request) {
	err := a.admit(r, serviceConnect)
	var device, module string
	if err == nil {
		device, module, err = a.pathIDs(r)
	}
	var req iothub.MethodRequest
	if err == nil {
		req, err = a.request(w, r)
	}
	var res iothub.MethodResult
	if err == nil {
		res, err = a.h.Invoke(r.Context(), device, module, req)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, "", iothub.EncodeMethodResult(res.Status, res.Payload))
}

// request reads and decodes an admitted request's body. The error is an
// *iothub.Error with the code to answer: 400004, 400005, 400006 or 413001.
func (a *restAPI) request(w http.ResponseWriter, r *http.Request) (iothub.MethodRequest, error) {
	body, err := readBody(w, r, maxBodyBytes, "The method payload exceeds the maximum size of 128 KB.")
	if err != nil {
		return iothub.MethodRequest{}, err
	}
	return iothub.DecodeMethodRequest(body)
}

// admit checks what every request needs: a service SAS of a policy with
// perm (401002 otherwise, the reason logged) and an api-version (400004).
// The error is an *iothub.Error. An authorized request's connection no
// longer counts as unauthenticated (rest_bounds.go).
func (a *restAPI) admit(r *http.Request, perm permission) error {
	if err := a.authorize(r, perm); err != nil {
		a.h.log.Warn("rest request unauthorized", logkey.Path, r.URL.Path, logkey.Remote, r.RemoteAddr, logkey.Reason, err.Error())
		return iothub.NewError(iothub.CodeUnauthorized, "Unauthorized")
	}
	authenticated(r)
	if r.URL.Query().Get("api-version") == "" {
		return iothub.NewError(iothub.CodeArgumentInvalid, "The api-version query parameter is required.")
	}
	return nil
}

// authorize checks the service SAS of the Authorization header: signed
// with the key of a policy that has perm.
func (a *restAPI) authorize(r *http.Request, perm permission) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errors.New("no Authorization header")
	}
	tok, err := iothub.ParseSAS(auth)
	if err != nil {
		return err
	}
	if !perm.grantedTo(tok.SKN) {
		return fmt.Errorf("policy %q lacks the permission %s needs", tok.SKN, r.URL.Path)
	}
	key, ok := a.h.reg.policyKey(tok.SKN)
	if !ok {
		return fmt.Errorf("unknown policy %q", tok.SKN)
	}
	if err := tok.Verify(key, a.h.opts.Now()); err != nil {
		return err
	}
	return a.h.checkAudience(tok, HostName)
}

// readBody reads at most limit bytes under the request's body deadline
// (rest_bounds.go), then lifts the deadline. A larger body is an
// *iothub.Error 413001 with tooLarge as its message and is not read to its
// end; a failed or timed-out read is 400006. Either closes the connection.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, tooLarge string) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, iothub.NewError(iothub.CodeMessageTooLarge, tooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		w.Header().Set("Connection", "close")
		return nil, iothub.NewError(iothub.CodeIotHubFormatError, "The request body could not be read.")
	}
	if int64(len(b)) > limit {
		return nil, iothub.NewError(iothub.CodeMessageTooLarge, tooLarge)
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{}) // a method call may now wait for its device
	return b, nil
}

// pathIDs returns the device and (on a module route, else "") module ids
// of r's path, unescaped per segment. An id outside the registry's rule
// is an *iothub.Error 400004.
func (a *restAPI) pathIDs(r *http.Request) (device, module string, err error) {
	device, module = r.PathValue("device"), r.PathValue("module")
	if err := checkIDs(device, module, strings.Contains(r.Pattern, "{module}")); err != nil {
		return "", "", err
	}
	if a.onIDs != nil {
		a.onIDs(device, module)
	}
	return device, module, nil
}

// fail writes err in the current body format (A) with the hub's headers:
// its code when err is an *iothub.Error, else 500001 ServerError.
func (a *restAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.writeError(w, r, err, "-TimeStamp:", (*iothub.Error).Body)
}

// failLegacy writes err in the legacy body format B (§5.3), the one the
// Node SDK parses: {"Message":"ErrorCode:<Name>;<text>",
// "ExceptionMessage":"Tracking ID:<id>"}, with the same headers as fail.
func (a *restAPI) failLegacy(w http.ResponseWriter, r *http.Request, err error) {
	a.writeError(w, r, err, "-G:0-TimeStamp:", legacyBody)
}

// legacyBody renders e in body format B.
func legacyBody(e *iothub.Error) []byte {
	name := e.Name
	if name == "" {
		name = strconv.Itoa(e.Code)
	}
	b, _ := json.Marshal(struct {
		Message          string `json:"Message"`
		ExceptionMessage string `json:"ExceptionMessage"`
	}{"ErrorCode:" + name + ";" + e.Message, "Tracking ID:" + e.TrackingID})
	return b
}

// writeError stamps err with a tracking id (hex, stampSep, the time) and
// writes it with render and the hub's headers. An error that is not an
// *iothub.Error is logged and answered 500001 ServerError.
func (a *restAPI) writeError(w http.ResponseWriter, r *http.Request, err error, stampSep string, render func(*iothub.Error) []byte) {
	var he *iothub.Error
	if !errors.As(err, &he) {
		a.h.log.Error("rest request failed", logkey.Path, r.URL.Path, logkey.Err, err)
		he = iothub.NewError(iothub.CodeServerError, "The hub failed to handle the request.")
	}
	e := *he // stamped below; the caller's error stays as it was
	now := a.h.opts.Now().UTC()
	e.Timestamp = now
	e.TrackingID = newHex(16) + stampSep + now.Format("01/02/2006 15:04:05")
	hd := w.Header()
	hd.Set("Content-Type", jsonContentType)
	if e.Name != "" {
		hd.Set(iothub.ErrorCodeHeader, e.Name)
	}
	hd.Set("x-ms-request-id", iothub.NewRequestID())
	if e.HTTPStatus == http.StatusRequestEntityTooLarge || e.HTTPStatus == http.StatusUnauthorized {
		hd.Set("Connection", "close") // the (rest of the) body is not read
	}
	a.writeDeadline(w)
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(render(&e))
	a.h.log.LogAttrs(r.Context(), slog.LevelDebug, "rest error", slog.String(logkey.Path, r.URL.Path),
		slog.Int(logkey.ErrorCode, e.Code), slog.String(logkey.TrackingID, e.TrackingID))
}

// writeJSON answers status with a JSON body, the hub's headers
// and, when etag is set, its quoted ETag.
func (a *restAPI) writeJSON(w http.ResponseWriter, status int, etag string, body []byte) {
	hd := w.Header()
	if !a.h.opts.Faults.OmitJSONContentType {
		hd.Set("Content-Type", jsonContentType)
	}
	if etag != "" {
		hd.Set("ETag", `"`+etag+`"`)
	}
	hd.Set("x-ms-request-id", iothub.NewRequestID())
	a.writeDeadline(w)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// ifMatch is the If-Match header without its quotes (and weak prefix W/);
// "" when absent.
func ifMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

// notFound answers paths outside the API the way ASP.NET routing does.
func (a *restAPI) notFound(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("x-ms-request-id", iothub.NewRequestID())
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"Message":%q}`, "No HTTP resource was found that matches the request URI.")
}

// newHex returns n random bytes as lowercase hex.
func newHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
