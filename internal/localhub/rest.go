package localhub

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// maxBodyBytes bounds a REST body: the 128 KB payload plus room for the
// other fields and whitespace. Larger bodies are 413001 without being read.
const maxBodyBytes = iothub.MaxPayloadBytes + 16*1024

const jsonContentType = "application/json; charset=utf-8"

// restAPI serves the service REST API (§5):
//
//	POST /twins/{device}/methods
//	POST /twins/{device}/modules/{module}/methods
//
// IDs are path-unescaped, each within its own segment: an escaped "/"
// (%2F) belongs to the ID, it never separates a device from a module. The
// api-version query parameter is required (any value; 400004 without it,
// as the real hub answers 400). Authorization is a service SAS whose skn
// names a policy with ServiceConnect (iothubowner or service), verified
// with that policy's key, whose resource covers the hub host with or
// without a port; anything else is 401 401002. Other HTTP methods on these
// paths are 405 405001 with "Allow: POST"; every other path, including a
// non-canonical one ("//", "/./", "/../"), is 404 with ASP.NET's body.
type restAPI struct {
	h   *Hub
	mux *http.ServeMux
}

// newRESTHandler returns the service API's handler.
func newRESTHandler(h *Hub) http.Handler {
	a := &restAPI{h: h, mux: http.NewServeMux()}
	a.mux.HandleFunc("POST /twins/{device}/methods", a.invoke)
	a.mux.HandleFunc("POST /twins/{device}/modules/{module}/methods", a.invoke)
	// The method-less patterns catch the other HTTP methods, and "/" every
	// other path, so that ServeMux's plain-text 404 and 405 never answer.
	a.mux.HandleFunc("/twins/{device}/methods", a.methodNotAllowed)
	a.mux.HandleFunc("/twins/{device}/modules/{module}/methods", a.methodNotAllowed)
	a.mux.HandleFunc("/", a.notFound)
	return a
}

// ServeHTTP routes r. Non-canonical paths are answered here: ServeMux
// would redirect them to their cleaned form.
func (a *restAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
func (a *restAPI) invoke(w http.ResponseWriter, r *http.Request) {
	req, err := a.request(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.h.Invoke(r.Context(), r.PathValue("device"), r.PathValue("module"), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	hd := w.Header()
	if !a.h.opts.Faults.OmitJSONContentType {
		hd.Set("Content-Type", jsonContentType)
	}
	hd.Set("x-ms-request-id", iothub.NewRequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(iothub.EncodeMethodResult(res.Status, res.Payload))
}

// request authorizes r and decodes its body. The error is an *iothub.Error
// with the code to answer: 401002, 400004, 400005, 400006 or 413001.
func (a *restAPI) request(r *http.Request) (iothub.MethodRequest, error) {
	if err := a.authorize(r); err != nil {
		a.h.log.Warn("rest request unauthorized", logkey.Path, r.URL.Path, logkey.Remote, r.RemoteAddr, logkey.Reason, err.Error())
		return iothub.MethodRequest{}, iothub.NewError(iothub.CodeUnauthorized, "Unauthorized")
	}
	if r.URL.Query().Get("api-version") == "" {
		return iothub.MethodRequest{}, iothub.NewError(iothub.CodeArgumentInvalid, "The api-version query parameter is required.")
	}
	body, err := readBody(r)
	if err != nil {
		return iothub.MethodRequest{}, err
	}
	return iothub.DecodeMethodRequest(body)
}

// authorize checks the service SAS of the Authorization header.
func (a *restAPI) authorize(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errors.New("no Authorization header")
	}
	tok, err := iothub.ParseSAS(auth)
	if err != nil {
		return err
	}
	if tok.SKN != policyOwner && tok.SKN != policyService {
		return fmt.Errorf("policy %q lacks ServiceConnect", tok.SKN)
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

// readBody reads at most maxBodyBytes; a larger body is an *iothub.Error
// 413001 and is not read to its end, a failed read 400006.
func readBody(r *http.Request) ([]byte, error) {
	tooLarge := iothub.NewError(iothub.CodeMessageTooLarge, "The method payload exceeds the maximum size of 128 KB.")
	if r.ContentLength > maxBodyBytes {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, iothub.NewError(iothub.CodeIotHubFormatError, "The request body could not be read.")
	}
	if len(b) > maxBodyBytes {
		return nil, tooLarge
	}
	return b, nil
}

// fail writes err in the current body format (A) with the hub's headers:
// its code when err is an *iothub.Error, else 500001 ServerError.
func (a *restAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *iothub.Error
	if !errors.As(err, &he) {
		he = iothub.NewError(iothub.CodeServerError, "The hub failed to handle the request.")
	}
	e := *he // stamped below; the caller's error stays as it was
	now := a.h.opts.Now().UTC()
	e.Timestamp = now
	e.TrackingID = newHex(16) + "-TimeStamp:" + now.Format("01/02/2006 15:04:05")
	hd := w.Header()
	hd.Set("Content-Type", jsonContentType)
	if e.Name != "" {
		hd.Set(iothub.ErrorCodeHeader, e.Name)
	}
	hd.Set("x-ms-request-id", iothub.NewRequestID())
	if e.HTTPStatus == http.StatusRequestEntityTooLarge {
		hd.Set("Connection", "close") // the rest of the body is not read
	}
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.Body())
	a.h.log.LogAttrs(r.Context(), slog.LevelDebug, "rest error", slog.String(logkey.Path, r.URL.Path),
		slog.Int(logkey.ErrorCode, e.Code), slog.String(logkey.TrackingID, e.TrackingID))
}

// methodNotAllowed answers HTTP methods other than POST on a methods path.
func (a *restAPI) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	a.fail(w, r, iothub.NewError(iothub.CodeMethodNotAllowed, "The requested resource does not support http method '"+r.Method+"'."))
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
