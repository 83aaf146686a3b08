package localhub

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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

// identity is one registered device or module as registry.json keeps it.
type identity struct {
	PrimaryKey        string    `json:"primaryKey"`
	SecondaryKey      string    `json:"secondaryKey"`
	Status            string    `json:"status,omitempty"` // devices: enabled or disabled
	StatusReason      string    `json:"statusReason,omitempty"`
	StatusUpdatedTime time.Time `json:"statusUpdatedTime,omitzero"` // zero until the status changes
	GenerationID      string    `json:"generationId"`
	ETagCounter       uint64    `json:"etag"`                // +1 per update
	ManagedBy         string    `json:"managedBy,omitempty"` // modules
}

// etag is the identity's ETag as the registry shows it: base64 of the
// counter's decimal digits, like the real hub's ("MA==" for 0).
func (id identity) etag() string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatUint(id.ETagCounter, 10)))
}

// registryDoc is the persisted registry (registry.json).
type registryDoc struct {
	Policies   map[string]string    `json:"policies"`   // policy name → base64 key
	Identities map[string]*identity `json:"identities"` // "dev" or "dev/mod"
}

// registry holds identities and policy keys; it is safe for concurrent use
// and persists every change to its file before reporting success. On a
// failed write memory is rolled back, so that it never differs from disk.
type registry struct {
	path string
	mu   sync.RWMutex
	doc  registryDoc
}

// openRegistry loads dir/registry.json or creates it with fresh policy
// keys. An identity in the format before secondary keys (its value a base64
// key) is migrated: that key becomes the primary one, a secondary one is
// generated, and the file is rewritten. A file that cannot be parsed is an
// error naming it; it is never reset.
func openRegistry(dir string, now time.Time) (*registry, error) {
	r := &registry{path: filepath.Join(dir, registryFile)}
	b, err := os.ReadFile(r.path)
	changed := false
	switch {
	case err == nil:
		if changed, err = r.load(b, now); err != nil {
			return nil, fmt.Errorf("registry file %s is corrupt (move it away to start an empty registry; devices then need new keys): %w", r.path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		changed = true
		r.doc = registryDoc{Policies: map[string]string{}, Identities: map[string]*identity{}}
	default:
		return nil, fmt.Errorf("registry: %w", err)
	}
	for _, p := range []string{policyOwner, policyService} {
		if _, ok := r.doc.Policies[p]; !ok {
			r.doc.Policies[p] = newKey()
			changed = true
		}
	}
	if changed {
		if err := writeJSONAtomic(r.path, r.doc); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// load parses registry.json in either format and reports whether it
// migrated anything.
func (r *registry) load(b []byte, now time.Time) (bool, error) {
	var raw struct {
		Policies   map[string]string          `json:"policies"`
		Identities map[string]json.RawMessage `json:"identities"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return false, err
	}
	r.doc = registryDoc{Policies: raw.Policies, Identities: make(map[string]*identity, len(raw.Identities))}
	if r.doc.Policies == nil {
		r.doc.Policies = map[string]string{}
	}
	migrated := false
	for id, v := range raw.Identities {
		ident, old, err := decodeIdentity(v, now)
		if err != nil {
			return false, fmt.Errorf("identity %q: %w", id, err)
		}
		migrated = migrated || old
		r.doc.Identities[id] = ident
	}
	return migrated, nil
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
	for _, k := range []string{ident.PrimaryKey, ident.SecondaryKey} {
		if err := checkKey(k); err != nil {
			return nil, false, err
		}
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
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := []string{device}
	if module != "" {
		ids = append(ids, iothub.ClientID(device, module))
	}
	var added []string
	for _, id := range ids {
		if _, ok := r.doc.Identities[id]; !ok {
			r.doc.Identities[id] = &identity{PrimaryKey: newKey(), SecondaryKey: newKey(), GenerationID: newGenerationID(now)}
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return nil
	}
	if err := writeJSONAtomic(r.path, r.doc); err != nil {
		for _, id := range added { // keep memory and disk in step
			delete(r.doc.Identities, id)
		}
		return err
	}
	return nil
}

// identitySpec is what a create or update asks for (registry REST PUT).
// An empty key is generated on create and kept on update; Status is
// enabled or disabled and ignored for modules.
type identitySpec struct {
	PrimaryKey, SecondaryKey string
	Status, StatusReason     string
	ManagedBy                string
}

// put creates clientID or updates it, following If-Match (ifMatch, quotes
// stripped; "" when absent): an absent identity is created when ifMatch is
// "" or "*"; an existing one is updated when ifMatch is "*" or its etag.
// It returns the identity as stored and whether it was created. The error
// is an *iothub.Error: 404001 for a module of an unknown device, 404001 or
// 404010 for an update of an absent identity, 409001 or 409301 for a
// create (no If-Match) of an existing one, 412001 for an etag mismatch;
// or the write's error, with the registry unchanged.
func (r *registry) put(clientID string, spec identitySpec, ifMatch string, now time.Time) (identity, bool, error) {
	device, module := iothub.SplitClientID(clientID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.doc.Identities[device]; module != "" && !ok {
		return identity{}, false, errDeviceNotFound(device)
	}
	old, exists := r.doc.Identities[clientID]
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
		c := *old
		next = &c
		next.ETagCounter++
	}
	applySpec(next, spec, module != "", now, exists)
	r.doc.Identities[clientID] = next
	if err := writeJSONAtomic(r.path, r.doc); err != nil {
		if exists { // keep memory and disk in step
			r.doc.Identities[clientID] = old
		} else {
			delete(r.doc.Identities, clientID)
		}
		return identity{}, false, err
	}
	return *next, !exists, nil
}

// applySpec writes spec into id. Keys given replace the stored ones;
// a status change stamps StatusUpdatedTime (an update only: a new
// identity's status has never changed).
func applySpec(id *identity, spec identitySpec, isModule bool, now time.Time, update bool) {
	if spec.PrimaryKey != "" {
		id.PrimaryKey = spec.PrimaryKey
	}
	if spec.SecondaryKey != "" {
		id.SecondaryKey = spec.SecondaryKey
	}
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.doc.Identities[device]; !ok {
		return nil, errDeviceNotFound(device)
	}
	old, ok := r.doc.Identities[clientID]
	if !ok {
		return nil, errIdentityNotFound(clientID)
	}
	if ifMatch != "" && ifMatch != "*" && ifMatch != old.etag() {
		return nil, errEtagMismatch(clientID, ifMatch, old.etag())
	}
	removed := map[string]*identity{clientID: old}
	if module == "" {
		for id, ident := range r.doc.Identities {
			if strings.HasPrefix(id, device+"/") {
				removed[id] = ident
			}
		}
	}
	for id := range removed {
		delete(r.doc.Identities, id)
	}
	if err := writeJSONAtomic(r.path, r.doc); err != nil {
		maps.Copy(r.doc.Identities, removed) // keep memory and disk in step
		return nil, err
	}
	return slices.Sorted(maps.Keys(removed)), nil
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

// identities returns the registered client ids with their primary keys.
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
