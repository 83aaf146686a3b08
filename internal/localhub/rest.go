package localhub

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/methodd/methodd/iothub"
)

// maxBodyBytes bounds a REST body: the 128 KB payload plus room for the
// other fields and whitespace. Larger bodies are 413001 without being read.
const maxBodyBytes = iothub.MaxPayloadBytes + 16*1024

const jsonContentType = "application/json; charset=utf-8"

// restAPI serves the service REST API (§5):
//
//	POST /twins/{d}/methods
//	POST /twins/{d}/modules/{m}/methods
//
// IDs are path-unescaped. The api-version query parameter is required (any
// value; 400004 without it, as the real hub answers 400). Authorization is a
// service SAS whose skn names a policy with ServiceConnect (iothubowner or
// service), verified with that policy's key, whose resource covers the hub
// host with or without a port; anything else is 401 401002. Other paths are
// 404, other HTTP methods 405 405001.
type restAPI struct{ h *Hub }

func (a *restAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	device, module, ok := methodsRoute(r.URL)
	if !ok {
		a.notFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.fail(w, r, iothub.NewError(iothub.CodeMethodNotAllowed, "The requested resource does not support http method '"+r.Method+"'."))
		return
	}
	if err := a.authorize(r); err != nil {
		a.h.log.Warn("rest request unauthorized", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
		a.fail(w, r, iothub.NewError(iothub.CodeUnauthorized, "Unauthorized"))
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		a.fail(w, r, iothub.NewError(iothub.CodeArgumentInvalid, "The api-version query parameter is required."))
		return
	}
	body, e := readBody(r)
	if e != nil {
		a.fail(w, r, e)
		return
	}
	req, e := iothub.DecodeMethodRequest(body)
	if e != nil {
		a.fail(w, r, e)
		return
	}
	res, e := a.h.Invoke(r.Context(), device, module, req)
	if e != nil {
		a.fail(w, r, e)
		return
	}
	hd := w.Header()
	if !a.h.opts.Faults.OmitJSONContentType {
		hd.Set("Content-Type", jsonContentType)
	}
	hd.Set("x-ms-request-id", newRequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(iothub.EncodeMethodResult(res.Status, res.Payload))
}

// methodsRoute extracts the identity from a methods path.
func methodsRoute(u *url.URL) (device, module string, ok bool) {
	seg := strings.Split(u.EscapedPath(), "/")
	switch {
	case len(seg) == 4 && seg[0] == "" && seg[1] == "twins" && seg[3] == "methods":
	case len(seg) == 6 && seg[0] == "" && seg[1] == "twins" && seg[3] == "modules" && seg[5] == "methods":
		if module, ok = unescape(seg[4]); !ok {
			return "", "", false
		}
	default:
		return "", "", false
	}
	device, ok = unescape(seg[2])
	return device, module, ok
}

func unescape(s string) (string, bool) {
	v, err := url.PathUnescape(s)
	return v, err == nil && v != ""
}

// authorize checks the service SAS of the Authorization header.
func (a *restAPI) authorize(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return fmt.Errorf("no Authorization header")
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

// readBody reads at most maxBodyBytes; a larger body is 413001 and is not
// read to its end.
func readBody(r *http.Request) ([]byte, *iothub.Error) {
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

// fail writes e in the current body format (A) with the hub's headers.
func (a *restAPI) fail(w http.ResponseWriter, r *http.Request, e *iothub.Error) {
	now := a.h.opts.Now().UTC()
	e.Timestamp = now
	e.TrackingID = newHex(16) + "-TimeStamp:" + now.Format("01/02/2006 15:04:05")
	hd := w.Header()
	hd.Set("Content-Type", jsonContentType)
	if e.Name != "" {
		hd.Set(iothub.ErrorCodeHeader, e.Name)
	}
	hd.Set("x-ms-request-id", newRequestID())
	if e.HTTPStatus == http.StatusRequestEntityTooLarge {
		hd.Set("Connection", "close") // the rest of the body is not read
	}
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.Body())
	a.h.log.LogAttrs(r.Context(), slog.LevelDebug, "rest error", slog.String("path", r.URL.Path),
		slog.Int("errorCode", e.Code), slog.String("trackingId", e.TrackingID))
}

// notFound answers paths outside the API the way ASP.NET routing does.
func (a *restAPI) notFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("x-ms-request-id", newRequestID())
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"Message":%q}`, "No HTTP resource was found that matches the request URI.")
}

func newHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newRequestID returns a random UUID-formatted request id.
func newRequestID() string {
	h := newHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
