package localhub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/methodd/methodd/iothub"
)

// Shared access policies the hub creates (§1.2). Both may invoke methods
// (ServiceConnect); only iothubowner may also sign device connections.
const (
	policyOwner   = "iothubowner"
	policyService = "service"
)

// registryDoc is the persisted registry (registry.json).
type registryDoc struct {
	Policies   map[string]string `json:"policies"`   // policy name → base64 key
	Identities map[string]string `json:"identities"` // "dev" or "dev/mod" → base64 key
}

// registry holds identities and policy keys; it is safe for concurrent use
// and persists every change to its file before reporting success.
type registry struct {
	path string
	mu   sync.RWMutex
	doc  registryDoc
}

// openRegistry loads dir/registry.json or creates it with fresh policy keys.
func openRegistry(dir string) (*registry, error) {
	r := &registry{path: filepath.Join(dir, registryFile)}
	b, err := os.ReadFile(r.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &r.doc); err != nil {
			return nil, fmt.Errorf("registry %s: %w", r.path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("registry: %w", err)
	}
	changed := false
	if r.doc.Policies == nil {
		r.doc.Policies = map[string]string{}
	}
	if r.doc.Identities == nil {
		r.doc.Identities = map[string]string{}
	}
	for _, p := range []string{policyOwner, policyService} {
		if _, ok := r.doc.Policies[p]; !ok {
			r.doc.Policies[p] = newKey()
			changed = true
		}
	}
	if changed || err != nil {
		if err := writeJSONAtomic(r.path, r.doc); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// newKey returns a random 32-byte key, base64-encoded.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.StdEncoding.EncodeToString(b)
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

// add registers device (and, with a module, the module and its device),
// keeping existing keys; it is idempotent.
func (r *registry) add(device, module string) error {
	if !validIdentityPart(device) || (module != "" && !validIdentityPart(module)) {
		return fmt.Errorf("register %q: ids must be 1-128 characters of [A-Za-z0-9-._:@*!'()]", iothub.ClientID(device, module))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := []string{device}
	if module != "" {
		ids = append(ids, iothub.ClientID(device, module))
	}
	changed := false
	for _, id := range ids {
		if _, ok := r.doc.Identities[id]; !ok {
			r.doc.Identities[id] = newKey()
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := writeJSONAtomic(r.path, r.doc); err != nil {
		for _, id := range ids { // keep memory and disk in step
			delete(r.doc.Identities, id)
		}
		return err
	}
	return nil
}

// key returns the key of identity clientID ("dev" or "dev/mod").
func (r *registry) key(clientID string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.doc.Identities[clientID]
	return k, ok
}

// policyKey returns the key of a shared access policy.
func (r *registry) policyKey(name string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.doc.Policies[name]
	return k, ok
}

// identities returns the registered client ids, sorted, with their keys.
func (r *registry) identities() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]string, len(r.doc.Identities))
	for id, k := range r.doc.Identities {
		out[id] = k
	}
	return out
}
