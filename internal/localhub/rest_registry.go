package localhub

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// routeRegistry serves the identity registry as far as the SDKs' Registry
// needs it:
//
//	PUT    /devices/{device}                   create (no If-Match, or "*" when absent) or update (If-Match)
//	GET    /devices/{device}
//	DELETE /devices/{device}                   also its modules; If-Match "*", absent or the etag
//	GET    /devices/{device}/modules
//	GET    /devices[/]?top=N                   list (Registry.list): at most N (1..1000) devices
//	PUT    /devices/{device}/modules/{module}  as for devices
//	GET    /devices/{device}/modules/{module}
//	DELETE /devices/{device}/modules/{module}
//
// Only iothubowner may (registry read/write). PUT and GET answer 200 with
// the identity as the real service shows it and its quoted etag in ETag;
// DELETE answers 204. Errors are in body format B: 404001, 404010, 409001
// (DeviceAlreadyExists: a create of an existing device, i.e. a PUT without
// If-Match), 409301, 412001 (If-Match names another etag), 400004 (ids,
// keys, thumbprints, authentication type, status, IoT Edge), 400006 (not
// a JSON object). Identities authenticate with sas (symmetric keys),
// selfSigned (x509Thumbprint) or certificateAuthority (x509.go).
func (a *restAPI) routeRegistry() {
	for _, p := range []string{"/devices/{device}", "/devices/{device}/modules/{module}"} {
		a.route(p, a.failLegacy,
			endpoint{http.MethodGet, a.getIdentity},
			endpoint{http.MethodPut, a.putIdentity},
			endpoint{http.MethodDelete, a.deleteIdentity},
		)
	}
	a.route("/devices/{device}/modules", a.failLegacy, endpoint{http.MethodGet, a.listModules})
	// Node's Registry.list asks for "/devices/", C# for "/devices".
	a.route("/devices/{$}", a.failLegacy, endpoint{http.MethodGet, a.listDevices})
	a.route("/devices", a.failLegacy, endpoint{http.MethodGet, a.listDevices})
}

// maxListDevices is the most devices GET /devices returns, and its
// default: the real hub's limit for the top parameter.
const maxListDevices = 1000

// listDevices answers GET /devices[/]?top=N (Registry.list): the first N
// devices (1..1000, default 1000) in id order, modules excluded, as GET
// /devices/{id} shows each; a bad top is 400004.
func (a *restAPI) listDevices(w http.ResponseWriter, r *http.Request) {
	top, err := maxListDevices, a.admit(r, registryReadWrite)
	if v := r.URL.Query().Get("top"); err == nil && v != "" {
		if top, err = strconv.Atoi(v); err != nil || top < 1 || top > maxListDevices {
			err = iothub.NewError(iothub.CodeArgumentInvalid, "top must be an integer from 1 to 1000.")
		}
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	ids := slices.Sorted(maps.Keys(a.h.reg.identities()))
	out := make([]json.RawMessage, 0, min(len(ids), top))
	for _, clientID := range ids {
		if strings.Contains(clientID, "/") {
			continue // a module
		}
		if id, ok := a.h.reg.lookup(clientID); ok { // not deleted meanwhile
			out = append(out, a.h.identityJSON(clientID, id))
		}
		if len(out) == top {
			break
		}
	}
	b, _ := json.Marshal(out)
	a.writeJSON(w, http.StatusOK, "", b)
}

// getIdentity answers GET /devices/{device}[/modules/{module}].
func (a *restAPI) getIdentity(w http.ResponseWriter, r *http.Request) {
	clientID, err := a.registryTarget(r)
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	id, ok := a.h.reg.lookup(clientID)
	if !ok { // deleted meanwhile
		a.failLegacy(w, r, errIdentityNotFound(clientID))
		return
	}
	a.writeJSON(w, http.StatusOK, id.etag(), a.h.identityJSON(clientID, id))
}

// putIdentity answers PUT /devices/{device}[/modules/{module}].
func (a *restAPI) putIdentity(w http.ResponseWriter, r *http.Request) {
	var spec identitySpec
	var device, module string
	err := a.admit(r, registryReadWrite)
	if err == nil {
		device, module, err = a.pathIDs(r)
	}
	clientID := iothub.ClientID(device, module)
	var body []byte
	if err == nil {
		body, err = readBody(w, r, maxIdentityBytes, "The identity exceeds the maximum size of the request body.")
	}
	if err == nil {
		spec, err = decodeIdentitySpec(body, device, module)
	}
	var id identity
	if err == nil {
		id, err = a.h.putIdentity(clientID, spec, ifMatch(r))
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, id.etag(), a.h.identityJSON(clientID, id))
}

// deleteIdentity answers DELETE /devices/{device}[/modules/{module}].
func (a *restAPI) deleteIdentity(w http.ResponseWriter, r *http.Request) {
	clientID, err := a.registryTarget(r)
	if err == nil {
		err = a.h.deleteIdentity(clientID, ifMatch(r))
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	w.Header().Set("x-ms-request-id", iothub.NewRequestID())
	w.WriteHeader(http.StatusNoContent)
}

// listModules answers GET /devices/{device}/modules with a JSON array.
func (a *restAPI) listModules(w http.ResponseWriter, r *http.Request) {
	device, err := a.registryTarget(r)
	var ids []string
	var mods []identity
	if err == nil {
		ids, mods, err = a.h.reg.modules(device)
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	out := make([]json.RawMessage, len(ids))
	for i, id := range ids {
		out[i] = a.h.identityJSON(id, mods[i])
	}
	b, _ := json.Marshal(out)
	a.writeJSON(w, http.StatusOK, "", b)
}

// registryTarget admits r to the registry and returns the client id of the
// registered identity its path names (404001, 404010 otherwise).
func (a *restAPI) registryTarget(r *http.Request) (string, error) {
	if err := a.admit(r, registryReadWrite); err != nil {
		return "", err
	}
	device, module, err := a.pathIDs(r)
	if err != nil {
		return "", err
	}
	return a.h.registered(device, module)
}

// checkIDs refuses ids the hub cannot register (400004): device, and
// module when hasModule, must follow the registry's rule and be neither
// "." nor ".." (path segments that mean something else).
func checkIDs(device, module string, hasModule bool) error {
	if !validID(device) || (hasModule && !validID(module)) {
		return iothub.NewError(iothub.CodeArgumentInvalid, "Invalid identity "+iothub.ClientID(device, module)+": "+idRule+".")
	}
	return nil
}

// validID is validIdentityPart without "." and "..".
func validID(s string) bool {
	return validIdentityPart(s) && s != "." && s != ".."
}

// identityBody is the part of a registry PUT body the hub reads. Other
// members (etag, generationId, connectionState, counts, times) are
// read-only and ignored, so that an identity read back can be written.
type identityBody struct {
	DeviceID       *string `json:"deviceId"`
	ModuleID       *string `json:"moduleId"`
	Status         *string `json:"status"`
	StatusReason   *string `json:"statusReason"`
	ManagedBy      *string `json:"managedBy"`
	Authentication *struct {
		Type         *string `json:"type"`
		SymmetricKey *struct {
			PrimaryKey   *string `json:"primaryKey"`
			SecondaryKey *string `json:"secondaryKey"`
		} `json:"symmetricKey"`
		X509Thumbprint *struct {
			PrimaryThumbprint   *string `json:"primaryThumbprint"`
			SecondaryThumbprint *string `json:"secondaryThumbprint"`
		} `json:"x509Thumbprint"`
	} `json:"authentication"`
	Capabilities *struct {
		IotEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
}

// maxStatusReason bounds statusReason (characters), as the real hub does.
const maxStatusReason = 128

// decodeIdentitySpec validates a registry PUT body for device/module. The
// error is an *iothub.Error: 400006 when it is not a JSON object of the
// right shape, 400004 when a value is refused.
func decodeIdentitySpec(body []byte, device, module string) (identitySpec, error) {
	var b identityBody
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &b) != nil {
		return identitySpec{}, iothub.NewError(iothub.CodeIotHubFormatError, "The request body is not a valid JSON object of a device or module identity.")
	}
	invalid := func(msg string) (identitySpec, error) {
		return identitySpec{}, iothub.NewError(iothub.CodeArgumentInvalid, msg)
	}
	switch {
	case b.DeviceID != nil && *b.DeviceID != device:
		return invalid("The deviceId in the body (" + *b.DeviceID + ") differs from the one in the path (" + device + ").")
	case module != "" && b.ModuleID != nil && *b.ModuleID != module:
		return invalid("The moduleId in the body (" + *b.ModuleID + ") differs from the one in the path (" + module + ").")
	case b.Capabilities != nil && b.Capabilities.IotEdge:
		return invalid("IoT Edge devices are not supported by this hub: capabilities.iotEdge must be false.")
	}
	spec := identitySpec{Status: deref(b.Status), StatusReason: deref(b.StatusReason), ManagedBy: deref(b.ManagedBy)}
	if module == "" {
		switch s := strings.ToLower(spec.Status); s {
		case "", statusEnabled, statusDisabled:
			spec.Status = s
		default:
			return invalid("status must be enabled or disabled, not " + spec.Status + ".")
		}
		if len([]rune(spec.StatusReason)) > maxStatusReason {
			return invalid("statusReason is longer than 128 characters.")
		}
	}
	if err := authSpec(&b, &spec); err != nil {
		return identitySpec{}, err
	}
	return spec, nil
}

// authSpec reads the authentication member: type sas (or absent),
// selfSigned or certificateAuthority; keys given are base64 of 16 to 64
// bytes and only for sas; thumbprints given are SHA-1 or SHA-256 hex and
// only for selfSigned, which needs a primary one; certificateAuthority
// takes neither. Empty strings and nulls count as not given. An absent
// type is left to the registry: sas on create, the stored type on update
// (registry.put checks the credentials against it).
func authSpec(b *identityBody, spec *identitySpec) error {
	auth := b.Authentication
	if auth == nil {
		return nil
	}
	invalid := func(msg string) error { return iothub.NewError(iothub.CodeArgumentInvalid, msg) }
	if sk := auth.SymmetricKey; sk != nil {
		spec.PrimaryKey, spec.SecondaryKey = deref(sk.PrimaryKey), deref(sk.SecondaryKey)
	}
	if tp := auth.X509Thumbprint; tp != nil {
		spec.PrimaryThumbprint, spec.SecondaryThumbprint = deref(tp.PrimaryThumbprint), deref(tp.SecondaryThumbprint)
	}
	keys := spec.PrimaryKey != "" || spec.SecondaryKey != ""
	prints := spec.PrimaryThumbprint != "" || spec.SecondaryThumbprint != ""
	switch t := deref(auth.Type); t {
	case "", authSAS:
		spec.AuthType = t
		if prints {
			return invalid("authentication.x509Thumbprint is for type selfSigned only, not sas.")
		}
	case authSelfSigned:
		spec.AuthType = t
		if keys {
			return invalid("authentication.symmetricKey is for type sas only, not selfSigned.")
		}
		if spec.PrimaryThumbprint == "" {
			return invalid("authentication type selfSigned needs x509Thumbprint.primaryThumbprint.")
		}
	case authCA:
		spec.AuthType = t
		if keys || prints {
			return invalid("authentication type certificateAuthority takes neither symmetricKey nor x509Thumbprint.")
		}
	default:
		return invalid("authentication.type " + t + " is not supported: use sas, selfSigned or certificateAuthority.")
	}
	for name, k := range map[string]string{"primaryKey": spec.PrimaryKey, "secondaryKey": spec.SecondaryKey} {
		if k == "" {
			continue
		}
		if err := checkKey(k); err != nil {
			return invalid("authentication.symmetricKey." + name + ": " + err.Error() + ".")
		}
	}
	for name, tp := range map[string]string{"primaryThumbprint": spec.PrimaryThumbprint, "secondaryThumbprint": spec.SecondaryThumbprint} {
		if tp == "" {
			continue
		}
		if err := checkThumbprint(tp); err != nil {
			return invalid("authentication.x509Thumbprint." + name + ": " + err.Error() + ".")
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// putIdentity creates or updates identity clientID (registry.put) and
// keeps the rest of the hub in step: a new identity gets its twin (or the
// create is undone), a disabled device loses its live connections and
// those of its modules, and hub.json is rewritten (soon: refreshInfo).
// The error is put's.
func (h *Hub) putIdentity(clientID string, spec identitySpec, ifMatch string) (identity, error) {
	id, created, err := h.reg.put(clientID, spec, ifMatch, h.opts.Now())
	if err != nil {
		return identity{}, err
	}
	if created {
		if err := h.twins.ensure(clientID, h.opts.Now()); err != nil {
			if _, rerr := h.reg.remove(clientID, ""); rerr != nil {
				h.log.Error("registry create not undone", logkey.ClientID, clientID, logkey.Err, rerr)
			}
			return identity{}, err
		}
		h.log.Info("identity created", logkey.ClientID, clientID)
	} else {
		h.log.Info("identity updated", logkey.ClientID, clientID)
	}
	if id.Status == statusDisabled {
		h.disconnectDevice(clientID, ErrIdentityDisabled)
	}
	h.refreshInfo()
	return id, nil
}

// deleteIdentity removes identity clientID (with a device, its modules),
// their twins and live connections, forgets their persistent sessions and
// has hub.json rewritten (soon: refreshInfo). The error is registry.remove's.
func (h *Hub) deleteIdentity(clientID, ifMatch string) error {
	removed, err := h.reg.remove(clientID, ifMatch)
	if err != nil {
		return err
	}
	for _, id := range removed {
		h.endSession(id, ErrIdentityDeleted, true)
		if err := h.twins.remove(id); err != nil {
			h.log.Error("twin of a deleted identity not removed", logkey.ClientID, id, logkey.Err, err)
		}
		h.log.Info("identity deleted", logkey.ClientID, id)
	}
	h.refreshInfo()
	return nil
}

// disconnectDevice closes the live connections of device (and of its
// modules) with cause.
func (h *Hub) disconnectDevice(device string, cause error) {
	for id := range h.reg.identities() {
		if id == device || strings.HasPrefix(id, device+"/") {
			h.endSession(id, cause, false)
		}
	}
}

// endSession closes clientID's live connection with cause (its
// EventDisconnected reports it) and, with forget, drops the session the
// broker keeps for it, so that a new identity of the same id starts
// afresh.
func (h *Hub) endSession(clientID string, cause error, forget bool) {
	if cl := h.presence.client(clientID); cl != nil {
		h.logConn(slog.LevelInfo, "mqtt connection closed by the registry", cl, logkey.Reason, cause.Error())
		cl.Stop(cause)
	}
	if !forget {
		return
	}
	if cl, ok := h.broker.Clients.Get(clientID); ok {
		if !cl.Closed() {
			cl.Stop(cause)
		}
		h.broker.UnsubscribeClient(cl)
		h.broker.Clients.Delete(clientID)
	}
	if err := h.sessions.drop(clientID); err != nil { // also when the hub restarted since it was last seen
		h.log.Error("saved session of a deleted identity not removed", logkey.ClientID, clientID, logkey.Err, err)
	}
}

// refreshInfo has hub.json rewritten after a registry change, by the
// background writer (info_writer.go): a burst of changes rewrites it about
// twice a second, not once per change. A failed write is logged: the
// registry is the truth, hub.json is written again at the next change,
// Close or start.
func (h *Hub) refreshInfo() {
	h.markInfoDirty()
}

// Registry JSON shapes, as the real service returns them.
type (
	symmetricKeyJSON struct {
		PrimaryKey   *string `json:"primaryKey"`
		SecondaryKey *string `json:"secondaryKey"`
	}
	thumbprintJSON struct {
		PrimaryThumbprint   *string `json:"primaryThumbprint"`
		SecondaryThumbprint *string `json:"secondaryThumbprint"`
	}
	authJSON struct {
		SymmetricKey   symmetricKeyJSON `json:"symmetricKey"`
		X509Thumbprint thumbprintJSON   `json:"x509Thumbprint"`
		Type           string           `json:"type"`
	}
	deviceJSON struct {
		DeviceID                   string   `json:"deviceId"`
		GenerationID               string   `json:"generationId"`
		ETag                       string   `json:"etag"`
		ConnectionState            string   `json:"connectionState"`
		Status                     string   `json:"status"`
		StatusReason               *string  `json:"statusReason"`
		ConnectionStateUpdatedTime string   `json:"connectionStateUpdatedTime"`
		StatusUpdatedTime          string   `json:"statusUpdatedTime"`
		LastActivityTime           string   `json:"lastActivityTime"`
		CloudToDeviceMessageCount  int      `json:"cloudToDeviceMessageCount"`
		Authentication             authJSON `json:"authentication"`
		Capabilities               struct {
			IotEdge bool `json:"iotEdge"`
		} `json:"capabilities"`
	}
	moduleJSON struct {
		ModuleID                   string   `json:"moduleId"`
		ManagedBy                  *string  `json:"managedBy"`
		DeviceID                   string   `json:"deviceId"`
		GenerationID               string   `json:"generationId"`
		ETag                       string   `json:"etag"`
		ConnectionState            string   `json:"connectionState"`
		ConnectionStateUpdatedTime string   `json:"connectionStateUpdatedTime"`
		LastActivityTime           string   `json:"lastActivityTime"`
		CloudToDeviceMessageCount  int      `json:"cloudToDeviceMessageCount"`
		Authentication             authJSON `json:"authentication"`
	}
)

// identityJSON renders identity clientID as the registry API returns it;
// credentials an identity does not have (keys of an X.509 one, thumbprints
// of a SAS or CA one) are null. Connection state is live; connection and activity times are not tracked
// and show the real hub's "never" value.
func (h *Hub) identityJSON(clientID string, id identity) []byte {
	device, module := iothub.SplitClientID(clientID)
	state := "Disconnected"
	if h.presence.client(clientID) != nil {
		state = "Connected"
	}
	auth := authJSON{
		SymmetricKey:   symmetricKeyJSON{nullable(id.PrimaryKey), nullable(id.SecondaryKey)},
		X509Thumbprint: thumbprintJSON{nullable(id.PrimaryThumbprint), nullable(id.SecondaryThumbprint)},
		Type:           id.authType(),
	}
	var b []byte
	if module != "" {
		b, _ = json.Marshal(moduleJSON{
			ModuleID: module, ManagedBy: nullable(id.ManagedBy), DeviceID: device, GenerationID: id.GenerationID,
			ETag: id.etag(), ConnectionState: state, ConnectionStateUpdatedTime: hubTime(time.Time{}),
			LastActivityTime: hubTime(time.Time{}), Authentication: auth,
		})
		return b
	}
	b, _ = json.Marshal(deviceJSON{
		DeviceID: device, GenerationID: id.GenerationID, ETag: id.etag(), ConnectionState: state,
		Status: cmpOr(id.Status, statusEnabled), StatusReason: nullable(id.StatusReason),
		ConnectionStateUpdatedTime: hubTime(time.Time{}), StatusUpdatedTime: hubTime(id.StatusUpdatedTime),
		LastActivityTime: hubTime(time.Time{}), Authentication: auth,
	})
	return b
}

// nullable is s, or nil (JSON null) when s is empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// hubTime renders t as the real hub does: UTC with 7 fractional digits,
// "0001-01-01T00:00:00Z" for a time that never happened.
func hubTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}
