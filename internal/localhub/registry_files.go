package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// policiesDoc is registry.json as this version writes it.
type policiesDoc struct {
	Policies map[string]string `json:"policies"` // policy name → base64 key
}

// openRegistry loads dir/registry.json (the policies) and every identity
// file of dir/identities, or creates registry.json with fresh policy keys.
//
// A registry.json that still holds identities (the format of earlier
// versions, in either of its forms: an identity as a base64 key string, the
// oldest, or as an object) is migrated: every identity is written to its
// file first, then registry.json is rewritten with the policies only. A
// crash in between leaves identities in both places; the next open then
// prefers the identity file and drops registry.json's copy. An identity in
// the oldest form keeps its key as the primary one and gains a secondary
// one.
//
// A module file whose device is not registered (left by a crash in the
// middle of a device's delete, which removes the device's file first) is
// removed, with a warning. A file that cannot be parsed is an error naming
// it; it is never reset.
func openRegistry(dir string, now time.Time, log *slog.Logger) (*registry, error) {
	r := &registry{path: filepath.Join(dir, registryFile), dir: filepath.Join(dir, identitiesDir), log: log}
	inline, rewrite, err := r.loadPolicies(now)
	if err != nil {
		return nil, err
	}
	if err := ensureDir(r.dir); err != nil {
		return nil, err
	}
	if err := r.loadIdentities(now); err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(inline)) { // migration: to its file, unless already there
		if _, ok := r.doc.Identities[id]; ok {
			continue
		}
		if err := r.writeIdentity(id, inline[id]); err != nil {
			return nil, err
		}
		r.doc.Identities[id] = inline[id]
	}
	if err := r.dropOrphans(); err != nil {
		return nil, err
	}
	for _, p := range []string{policyOwner, policyService} {
		if _, ok := r.doc.Policies[p]; !ok {
			r.doc.Policies[p] = newKey()
			rewrite = true
		}
	}
	if rewrite || len(inline) > 0 {
		if err := writeJSONAtomic(r.path, policiesDoc{r.doc.Policies}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// loadPolicies reads registry.json: its policies into r.doc, and the
// identities it still holds (earlier versions' format), which it returns
// for migration. rewrite reports that registry.json is missing.
func (r *registry) loadPolicies(now time.Time) (inline map[string]*identity, rewrite bool, err error) {
	r.doc = registryDoc{Policies: map[string]string{}, Identities: map[string]*identity{}}
	b, err := os.ReadFile(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("registry: %w", err)
	}
	var raw struct {
		Policies   map[string]string          `json:"policies"`
		Identities map[string]json.RawMessage `json:"identities"`
	}
	corrupt := func(err error) error {
		return fmt.Errorf("registry file %s is corrupt (move it away to start an empty registry; devices then need new keys): %w", r.path, err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, false, corrupt(err)
	}
	if raw.Policies != nil {
		r.doc.Policies = raw.Policies
	}
	inline = make(map[string]*identity, len(raw.Identities))
	for id, v := range raw.Identities {
		ident, _, err := decodeIdentity(v, now)
		if err != nil {
			return nil, false, corrupt(fmt.Errorf("identity %q: %w", id, err))
		}
		inline[id] = ident
	}
	return inline, false, nil
}

// loadIdentities reads every identity file of r.dir into r.doc.
func (r *registry) loadIdentities(now time.Time) error {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() {
			continue // temporary files of an interrupted write, strays
		}
		path := filepath.Join(r.dir, e.Name())
		clientID, err := url.PathUnescape(name)
		if err != nil || !validClientID(clientID) {
			return fmt.Errorf("identity file %s: name is not an escaped device or module id", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		ident, old, err := decodeIdentity(b, now)
		if err != nil {
			return fmt.Errorf("identity file %s is corrupt (move it away to drop that identity; it then needs new keys): %w", path, err)
		}
		if old { // a key string: keep the migrated form
			if err := r.writeIdentity(clientID, ident); err != nil {
				return err
			}
		}
		r.doc.Identities[clientID] = ident
	}
	return nil
}

// dropOrphans removes the modules whose device is not registered, and
// their files.
func (r *registry) dropOrphans() error {
	for _, id := range slices.Sorted(maps.Keys(r.doc.Identities)) {
		device, module := iothub.SplitClientID(id)
		if _, ok := r.doc.Identities[device]; module == "" || ok {
			continue
		}
		if err := r.removeIdentityFile(id); err != nil {
			return err
		}
		delete(r.doc.Identities, id)
		r.log.Warn("registry: module of an unregistered device removed (a device delete was interrupted)",
			logkey.ClientID, id, logkey.Path, r.identityPath(id))
	}
	return nil
}

// validClientID reports whether id is a valid "dev" or "dev/mod".
func validClientID(id string) bool {
	device, module := iothub.SplitClientID(id)
	return validIdentityPart(device) && (module == "" || validIdentityPart(module)) && iothub.ClientID(device, module) == id
}

// identityPath is the file of identity clientID.
func (r *registry) identityPath(clientID string) string {
	return filepath.Join(r.dir, url.PathEscape(clientID)+".json")
}

// writeIdentity writes identity clientID's file atomically.
func (r *registry) writeIdentity(clientID string, id *identity) error {
	return writeJSONAtomic(r.identityPath(clientID), id)
}

// removeIdentityFile removes identity clientID's file; a missing file is
// not an error.
func (r *registry) removeIdentityFile(clientID string) error {
	if err := os.Remove(r.identityPath(clientID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}
