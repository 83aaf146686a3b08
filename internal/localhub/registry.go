package localhub

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Shared access policies the hub creates (§1.2). Both may invoke methods
// and use twins (ServiceConnect); only iothubowner may also read and write
// the identity registry and sign device connections.
const (
	policyOwner   = "iothubowner"
	policyService = "service"
)

// Identity statuses. Only devices have one: a module follows its device.
const (
	statusEnabled  = "enabled"
	statusDisabled = "disabled"
)

// Why the hub refuses a CONNECT or ends a connection because of the
// registry: the identity (or, for a module, its device) was disabled, or
// it was deleted. A refused CONNECT is answered CONNACK 5, as for an
// unknown identity (Event.Err of EventConnRefused); a live connection is
// closed (Event.Err of EventDisconnected).
var (
	ErrIdentityDisabled = errors.New("identity is disabled")
	ErrIdentityDeleted  = errors.New("identity was deleted from the registry")
)

// Authentication types of an identity (the registry API's
// authentication.type): a SAS token signed with the identity's keys, a
// self-signed (or any) client certificate named by its thumbprint, or a
// client certificate issued by a trusted CA (x509.go).
const (
	authSAS        = "sas"
	authSelfSigned = "selfSigned"
	authCA         = "certificateAuthority"
)

// identity is one registered device or module as its file keeps it. A SAS
// identity has both keys and no thumbprint, and no authType in its file
// (files of earlier versions have none either); an X.509 identity has no
// keys, and a selfSigned one a primary thumbprint (x509.go).
type identity struct {
	PrimaryKey          string    `json:"primaryKey"`
	SecondaryKey        string    `json:"secondaryKey"`
	AuthType            string    `json:"authType,omitempty"` // "" = authSAS
	PrimaryThumbprint   string    `json:"primaryThumbprint,omitempty"`
	SecondaryThumbprint string    `json:"secondaryThumbprint,omitempty"`
	Status              string    `json:"status,omitempty"` // devices: enabled or disabled
	StatusReason        string    `json:"statusReason,omitempty"`
	StatusUpdatedTime   time.Time `json:"statusUpdatedTime,omitzero"` // zero until the status changes
	GenerationID        string    `json:"generationId"`
	ETagCounter         uint64    `json:"etag"`                // +1 per update
	ManagedBy           string    `json:"managedBy,omitempty"` // modules
}

// authType is the identity's authentication type: authSAS, authSelfSigned
// or authCA.
func (id identity) authType() string { return cmpOr(id.AuthType, authSAS) }

// checkAuth reports whether the identity's credentials fit its
// authentication type: SAS has two valid keys and no thumbprint; selfSigned
// a valid primary thumbprint, an optional valid secondary one and no keys;
// certificateAuthority neither keys nor thumbprints.
func (id identity) checkAuth() error {
	keys := id.PrimaryKey != "" || id.SecondaryKey != ""
	prints := id.PrimaryThumbprint != "" || id.SecondaryThumbprint != ""
	switch t := id.authType(); t {
	case authSAS:
		if prints {
			return errors.New("a sas identity has no thumbprints")
		}
		for _, k := range []string{id.PrimaryKey, id.SecondaryKey} {
			if err := checkKey(k); err != nil {
				return err
			}
		}
	case authSelfSigned:
		if keys {
			return errors.New("a selfSigned identity has no symmetric keys")
		}
		if err := checkThumbprint(id.PrimaryThumbprint); err != nil {
			return fmt.Errorf("primary thumbprint: %w", err)
		}
		if id.SecondaryThumbprint != "" {
			if err := checkThumbprint(id.SecondaryThumbprint); err != nil {
				return fmt.Errorf("secondary thumbprint: %w", err)
			}
		}
	case authCA:
		if keys || prints {
			return errors.New("a certificateAuthority identity has neither symmetric keys nor thumbprints")
		}
	default:
		return fmt.Errorf("authentication type %q is none of %s, %s, %s", t, authSAS, authSelfSigned, authCA)
	}
	return nil
}

// etag is the identity's ETag as the registry shows it: base64 of the
// counter's decimal digits, like the real hub's ("MA==" for 0).
func (id identity) etag() string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatUint(id.ETagCounter, 10)))
}

// registryDoc is the registry in memory: registry.json's policies and
// the identities of the identities folder (registry_files.go).
type registryDoc struct {
	Policies   map[string]string    // policy name → base64 key
	Identities map[string]*identity // "dev" or "dev/mod"
}

// registry holds identities and policy keys; it is safe for concurrent use
// and persists every change to its file before reporting success: a change
// writes (or removes) the files of the identities it touches, never the
// whole registry. On a failed write memory is left as it was, so that it
// never differs from disk.
//
// Changes take the lock of their device (lockDevice), which covers the
// device and its modules, and write their files under it; mu guards doc
// (memory) only, held for no file operation, so that changes to distinct
// devices write in parallel and readers never wait for a disk.
type registry struct {
	path    string // registry.json
	dir     string // identitiesDir
	log     *slog.Logger
	devLock keyedMutex
	mu      sync.RWMutex
	doc     registryDoc
	// cas are the CAs that certificateAuthority identities' certificates
	// must chain to (x509.go). Set once at start, before any connection,
	// and read without a lock.
	cas *x509.CertPool
}

// decodeIdentity reads one identity: an object, or (old format, reported
// by old) a bare base64 key string.
func decodeIdentity(v json.RawMessage, now time.Time) (*identity, bool, error) {
	if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '"' {
		var key string
		if err := json.Unmarshal(t, &key); err != nil {
			return nil, false, err
		}
		if err := checkKey(key); err != nil {
			return nil, false, err
		}
		return &identity{PrimaryKey: key, SecondaryKey: newKey(), GenerationID: newGenerationID(now)}, true, nil
	}
	ident := new(identity)
	if err := json.Unmarshal(v, ident); err != nil {
		return nil, false, err
	}
	if err := ident.checkAuth(); err != nil {
		return nil, false, err
	}
	if ident.Status != "" && ident.Status != statusEnabled && ident.Status != statusDisabled {
		return nil, false, fmt.Errorf("status %q is neither %s nor %s", ident.Status, statusEnabled, statusDisabled)
	}
	return ident, false, nil
}

// Symmetric key sizes the hub accepts (decoded bytes).
const (
	minKeyBytes = 16
	maxKeyBytes = 64
)

// checkKey reports whether key is standard base64 of 16 to 64 bytes.
func checkKey(key string) error {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) < minKeyBytes || len(b) > maxKeyBytes {
		return fmt.Errorf("a key must be base64 of %d to %d bytes", minKeyBytes, maxKeyBytes)
	}
	return nil
}

// newKey returns a random 32-byte key, base64-encoded.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.StdEncoding.EncodeToString(b)
}

// ticksAtUnixEpoch is 1970-01-01 in .NET ticks (100 ns since 0001-01-01).
const ticksAtUnixEpoch = 621355968000000000

// newGenerationID returns a generation id in the real hub's shape: the
// creation time in .NET ticks, e.g. "638512345678901234". A device deleted
// and created again gets a new one.
func newGenerationID(now time.Time) string {
	return strconv.FormatInt(now.UnixNano()/100+ticksAtUnixEpoch, 10)
}

// validIdentityPart reports whether s can be a device or module id here: the
// hub's character set (§1.1) without the characters that break topics, URLs
// or connection strings ('/', '#', '?', '%', '+', ';', '$', '=', ',', space).
// "*!'()" are kept: SDKs encode them differently in SAS resources (Node's
// lowercase %2a), and the hub verifies over sr as sent, so all of them work.
func validIdentityPart(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-._:@*!'()", c):
		default:
			return false
		}
	}
	return true
}

// idRule is the rule validIdentityPart enforces, for error messages.
const idRule = "ids must be 1-128 characters of [A-Za-z0-9-._:@*!'()]"

// add registers device (and, with a module, the module and its device),
// keeping existing identities as they are; it is idempotent.
func (r *registry) add(device, module string, now time.Time) error {
	if !validIdentityPart(device) || (module != "" && !validIdentityPart(module)) {
		return fmt.Errorf("register %q: %s", iothub.ClientID(device, module), idRule)
	}
	defer r.lockDevice(device)()
	ids := []string{device}
	if module != "" {
		ids = append(ids, iothub.ClientID(device, module))
	}
	for _, id := range ids { // the device first: a module file never precedes its device's
		if _, ok := r.lookup(id); ok {
			continue
		}
		ident := &identity{PrimaryKey: newKey(), SecondaryKey: newKey(), GenerationID: newGenerationID(now)}
		if err := r.writeIdentity(id, ident); err != nil {
			return err // memory keeps what is on disk: the device when only the module failed
		}
		r.set(id, ident)
	}
	return nil
}

// addCA registers device with certificateAuthority authentication
// (Options.X509Devices) when it is absent; a device already registered so
// is kept as it is. A device registered with another authentication type
// is an error: the hub will not silently change how it authenticates.
func (r *registry) addCA(device string, now time.Time) error {
	if !validIdentityPart(device) {
		return fmt.Errorf("register X.509 device %q: %s", device, idRule)
	}
	defer r.lockDevice(device)()
	if old, ok := r.lookup(device); ok {
		if t := old.authType(); t != authCA {
			return fmt.Errorf("register X.509 device %q: it is registered with %s authentication; delete it first or choose another id", device, t)
		}
		return nil
	}
	ident := &identity{AuthType: authCA, Status: statusEnabled, GenerationID: newGenerationID(now)}
	if err := r.writeIdentity(device, ident); err != nil {
		return err
	}
	r.set(device, ident)
	return nil
}

// identitySpec is what a create or update asks for (registry REST PUT).
// An empty key is generated on create and kept on update; Status is
// enabled or disabled and ignored for modules.
//
// AuthType is authSAS, authSelfSigned or authCA; "" means authSAS on
// create and the stored type on update. Keys are for SAS identities only,
// thumbprints (SHA-1 or SHA-256 hex of the certificate's DER) for
// selfSigned ones only: when either thumbprint is given both replace the
// stored ones (an empty secondary = none), when neither is they are kept.
// Changing an identity to an X.509 type drops its keys; changing it back
// to SAS generates new ones unless given.
type identitySpec struct {
	PrimaryKey, SecondaryKey               string
	Status, StatusReason                   string
	ManagedBy                              string
	AuthType                               string
	PrimaryThumbprint, SecondaryThumbprint string
}

// put creates clientID or updates it, following If-Match (ifMatch, quotes
// stripped; "" when absent): an absent identity is created when ifMatch is
// "" or "*"; an existing one is updated when ifMatch is "*" or its etag.
// It returns the identity as stored and whether it was created. The error
// is an *iothub.Error: 400004 for credentials that do not fit the
// authentication type (applyAuth), 404001 for a module of an unknown device, 404001 or
// 404010 for an update of an absent identity, 409001 or 409301 for a
// create (no If-Match) of an existing one, 412001 for an etag mismatch;
// or the write's error, with the registry unchanged.
func (r *registry) put(clientID string, spec identitySpec, ifMatch string, now time.Time) (identity, bool, error) {
	device, module := iothub.SplitClientID(clientID)
	defer r.lockDevice(device)()
	if _, ok := r.lookup(device); module != "" && !ok {
		return identity{}, false, errDeviceNotFound(device)
	}
	old, exists := r.lookup(clientID)
	switch {
	case !exists && ifMatch != "" && ifMatch != "*":
		return identity{}, false, errIdentityNotFound(clientID)
	case exists && ifMatch == "":
		return identity{}, false, errAlreadyExists(device, module)
	case exists && ifMatch != "*" && ifMatch != old.etag():
		return identity{}, false, errEtagMismatch(clientID, ifMatch, old.etag())
	}
	next := &identity{GenerationID: newGenerationID(now), PrimaryKey: newKey(), SecondaryKey: newKey(), Status: statusEnabled}
	if exists {
		next = &old // a copy: stored identities are never modified
		next.ETagCounter++
	}
	if err := applyAuth(next, spec); err != nil {
		return identity{}, false, err
	}
	applySpec(next, spec, module != "", now, exists)
	if err := r.writeIdentity(clientID, next); err != nil {
		return identity{}, false, err // memory unchanged, as the file is
	}
	r.set(clientID, next)
	return *next, !exists, nil
}

// applyAuth writes spec's authentication into id (see identitySpec). The
// error is an *iothub.Error 400004 when the credentials given do not fit
// the resulting type (keys for an X.509 identity, thumbprints for a SAS or
// CA one, a selfSigned identity without a valid primary thumbprint); id
// is then partly written and must be dropped.
func applyAuth(id *identity, spec identitySpec) error {
	invalid := func(msg string) error { return iothub.NewError(iothub.CodeArgumentInvalid, msg) }
	typ := cmpOr(spec.AuthType, id.authType())
	keys := spec.PrimaryKey != "" || spec.SecondaryKey != ""
	prints := spec.PrimaryThumbprint != "" || spec.SecondaryThumbprint != ""
	switch typ {
	case authSAS:
		if prints {
			return invalid("x509Thumbprint is for selfSigned identities only; this identity's authentication type is sas.")
		}
		id.PrimaryKey = cmpOr(spec.PrimaryKey, cmpOr(id.PrimaryKey, newKey()))
		id.SecondaryKey = cmpOr(spec.SecondaryKey, cmpOr(id.SecondaryKey, newKey()))
		id.AuthType, id.PrimaryThumbprint, id.SecondaryThumbprint = "", "", ""
	case authSelfSigned:
		if keys {
			return invalid("symmetricKey is for sas identities only; this identity's authentication type is selfSigned.")
		}
		id.PrimaryKey, id.SecondaryKey, id.AuthType = "", "", authSelfSigned
		if prints {
			id.PrimaryThumbprint, id.SecondaryThumbprint = spec.PrimaryThumbprint, spec.SecondaryThumbprint
		}
	case authCA:
		if keys || prints {
			return invalid("a certificateAuthority identity takes neither symmetricKey nor x509Thumbprint.")
		}
		id.PrimaryKey, id.SecondaryKey, id.AuthType = "", "", authCA
		id.PrimaryThumbprint, id.SecondaryThumbprint = "", ""
	default:
		return invalid("authentication.type " + typ + " is not supported: use sas, selfSigned or certificateAuthority.")
	}
	if err := id.checkAuth(); err != nil {
		return invalid("authentication: " + err.Error() + ".")
	}
	return nil
}

// applySpec writes spec's status and managedBy into id; a status change
// stamps StatusUpdatedTime (an update only: a new identity's status has
// never changed).
func applySpec(id *identity, spec identitySpec, isModule bool, now time.Time, update bool) {
	if isModule {
		id.Status, id.StatusReason = "", ""
		id.ManagedBy = spec.ManagedBy
		return
	}
	status := cmpOr(spec.Status, statusEnabled)
	if update && status != cmpOr(id.Status, statusEnabled) {
		id.StatusUpdatedTime = now.UTC()
	}
	id.Status, id.StatusReason = status, spec.StatusReason
}

// cmpOr returns s, or def when s is empty.
func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// remove deletes clientID, and with a device all its modules, when ifMatch
// ("" or "*" = any) matches its etag, and returns the client ids removed.
// The error is an *iothub.Error (404001, 404010, 412001) or the write's
// error, with the registry unchanged.
func (r *registry) remove(clientID, ifMatch string) ([]string, error) {
	device, module := iothub.SplitClientID(clientID)
	defer r.lockDevice(device)()
	if _, ok := r.lookup(device); !ok {
		return nil, errDeviceNotFound(device)
	}
	old, ok := r.lookup(clientID)
	if !ok {
		return nil, errIdentityNotFound(clientID)
	}
	if ifMatch != "" && ifMatch != "*" && ifMatch != old.etag() {
		return nil, errEtagMismatch(clientID, ifMatch, old.etag())
	}
	// The identity's own file goes first: its removal is the delete. A
	// device's module files follow; one left behind (a crash, an error) is
	// an orphan the next open removes.
	if err := r.removeIdentityFile(clientID); err != nil {
		return nil, err // memory unchanged, as the file is
	}
	r.mu.Lock()
	delete(r.doc.Identities, clientID)
	removed := []string{clientID}
	if module == "" {
		for id := range r.doc.Identities {
			if strings.HasPrefix(id, device+"/") {
				removed = append(removed, id)
				delete(r.doc.Identities, id)
			}
		}
	}
	r.mu.Unlock()
	for _, id := range removed[1:] {
		if err := r.removeIdentityFile(id); err != nil {
			r.log.Error("registry: file of a deleted module not removed (removed at the next start)", logkey.ClientID, id, logkey.Err, err)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// set stores identity clientID in memory (its file is written).
func (r *registry) set(clientID string, id *identity) {
	r.mu.Lock()
	r.doc.Identities[clientID] = id
	r.mu.Unlock()
}

// lookup returns a copy of identity clientID.
func (r *registry) lookup(clientID string) (identity, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.doc.Identities[clientID]
	if !ok {
		return identity{}, false
	}
	return *id, true
}

// credentials returns identity clientID and whether it may connect: its
// device (itself, for a device) is enabled.
func (r *registry) credentials(clientID string) (identity, bool, bool) {
	device, _ := iothub.SplitClientID(clientID)
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.doc.Identities[clientID]
	if !ok {
		return identity{}, false, false
	}
	dev, ok := r.doc.Identities[device]
	return *id, true, ok && dev.Status != statusDisabled
}

// key returns the primary key of identity clientID ("dev" or "dev/mod")
// when it is registered and enabled (for a module: its device is). A
// disabled identity is reported as absent, so that calls to it fail as
// the real hub fails them, with 404001 DeviceNotFound.
func (r *registry) key(clientID string) (string, bool) {
	id, ok, enabled := r.credentials(clientID)
	return id.PrimaryKey, ok && enabled
}

// modules returns device's modules, sorted by id. The error is an
// *iothub.Error 404001 when the device is not registered.
func (r *registry) modules(device string) ([]string, []identity, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.doc.Identities[device]; !ok {
		return nil, nil, errDeviceNotFound(device)
	}
	var ids []string
	for id := range r.doc.Identities {
		if strings.HasPrefix(id, device+"/") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]identity, len(ids))
	for i, id := range ids {
		out[i] = *r.doc.Identities[id]
	}
	return ids, out, nil
}

// policyKey returns the key of a shared access policy.
func (r *registry) policyKey(name string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.doc.Policies[name]
	return k, ok
}

// identities returns the registered client ids with their primary keys;
// the key of an X.509 identity is "".
func (r *registry) identities() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]string, len(r.doc.Identities))
	for id, ident := range r.doc.Identities {
		out[id] = ident.PrimaryKey
	}
	return out
}

// errDeviceNotFound is 404001 for device, in the legacy text the Node SDK
// surfaces (fleet reference §2.3).
func errDeviceNotFound(device string) error {
	return iothub.NewError(iothub.CodeDeviceNotFound, "Device "+device+" not registered")
}

// errIdentityNotFound is 404001 for a device, 404010 for a module.
func errIdentityNotFound(clientID string) error {
	device, module := iothub.SplitClientID(clientID)
	if module == "" {
		return errDeviceNotFound(device)
	}
	return iothub.NewError(iothub.CodeModuleNotFound, "Module "+module+" on device "+device+" not registered")
}

// errAlreadyExists is 409001 for a device, 409301 for a module.
func errAlreadyExists(device, module string) error {
	if module == "" {
		return iothub.NewError(iothub.CodeDeviceAlreadyExists, "A device with ID '"+device+"' is already registered.")
	}
	return iothub.NewError(iothub.CodeModuleAlreadyExists, "A module with ID '"+module+"' is already registered on device '"+device+"'.")
}

// errEtagMismatch is 412001 for an If-Match that names another etag.
func errEtagMismatch(clientID, got, current string) error {
	return iothub.NewError(iothub.CodePreconditionFailed, "Precondition failed: etag "+got+" does not match the current etag "+current+" of "+clientID+".")
}

// keyedMutex is a set of mutexes named by string, each existing while it
// is held or waited for.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu    sync.Mutex
	users int // holders and waiters
}

// lockDevice locks device's identities (the device and its modules) for
// a change and returns the unlock.
func (r *registry) lockDevice(device string) func() {
	k := &r.devLock
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[device]
	if e == nil {
		e = &keyedEntry{}
		k.m[device] = e
	}
	e.users++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.m, device)
		}
		k.mu.Unlock()
	}
}
