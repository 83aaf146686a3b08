package localhub

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// routeTwins serves the twin routes (fleet reference §2.1): GET reads a
// twin, PATCH merges into its tags and desired properties, PUT replaces
// them. Success is 200 with the whole twin and its quoted etag in the ETag
// header. If-Match (quoted or not; "*" or absent = any) must name the
// twin's etag, else 412001. Errors are in body format B: 404001 for an
// unknown device (also on the module route), 404010 for an unknown module,
// 400004 for a body the twin rules refuse (the twin is then unchanged),
// 413001 for a body over 144 KB.
func (a *restAPI) routeTwins() {
	for _, p := range []string{"/twins/{device}", "/twins/{device}/modules/{module}"} {
		a.route(p, a.failLegacy,
			endpoint{http.MethodGet, a.getTwin},
			endpoint{http.MethodPatch, func(w http.ResponseWriter, r *http.Request) { a.writeTwin(w, r, false) }},
			endpoint{http.MethodPut, func(w http.ResponseWriter, r *http.Request) { a.writeTwin(w, r, true) }},
		)
	}
}

// getTwin answers GET /twins/{device}[/modules/{module}].
func (a *restAPI) getTwin(w http.ResponseWriter, r *http.Request) {
	clientID, err := a.twinTarget(r)
	if err == nil {
		var doc []byte
		if doc, err = a.h.twinDocument(clientID); err == nil {
			a.h.log.Debug("twin read", logkey.ClientID, clientID)
			a.writeTwinDoc(w, doc)
			return
		}
	}
	a.failLegacy(w, r, err)
}

// writeTwin answers PATCH (replace false) and PUT (replace true).
func (a *restAPI) writeTwin(w http.ResponseWriter, r *http.Request, replace bool) {
	clientID, err := a.twinTarget(r)
	var body, doc []byte
	if err == nil {
		body, err = readBody(w, r, maxBodyBytes, "The twin update exceeds the maximum size of the request body.")
	}
	if err == nil {
		doc, err = a.h.updateTwin(clientID, body, replace, ifMatch(r))
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	msg := "twin patched"
	if replace {
		msg = "twin replaced"
	}
	a.h.log.LogAttrs(r.Context(), slog.LevelInfo, msg, slog.String(logkey.ClientID, clientID))
	a.writeTwinDoc(w, doc)
}

// twinTarget admits r and returns the client id of the registered identity
// its path names. The error is an *iothub.Error: 401002, 400004, 404001
// (also for a module of an unknown device) or 404010. An id outside the
// registry's rule ("/" from an escaped %2F included) is 400004.
func (a *restAPI) twinTarget(r *http.Request) (string, error) {
	if err := a.admit(r, serviceConnect); err != nil {
		return "", err
	}
	device, module, err := a.pathIDs(r)
	if err != nil {
		return "", err
	}
	return a.h.registered(device, module)
}

// registered returns the client id of device (module "" ) or of module on
// device when it is registered: else 404001 for the device, 404010 for the
// module. An id holding '/' names no identity.
func (h *Hub) registered(device, module string) (string, error) {
	if _, ok := h.reg.lookup(device); !ok || strings.Contains(device, "/") {
		return "", errDeviceNotFound(device)
	}
	if module == "" {
		return device, nil
	}
	clientID := iothub.ClientID(device, module)
	if _, ok := h.reg.lookup(clientID); !ok || strings.Contains(module, "/") {
		return "", errIdentityNotFound(clientID)
	}
	return clientID, nil
}

// writeTwinDoc answers 200 with a twin document and its etag.
func (a *restAPI) writeTwinDoc(w http.ResponseWriter, doc []byte) {
	var head struct {
		ETag string `json:"etag"`
	}
	_ = json.Unmarshal(doc, &head) // the document is the hub's own JSON
	a.writeJSON(w, http.StatusOK, head.ETag, doc)
}
