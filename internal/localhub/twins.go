package localhub

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/twindoc"
	"github.com/methodd/methodd/iothub"
)

// twinsDir is the state-directory folder of the twins: one file per
// identity, named by its path-escaped client id ("dev.json",
// "dev%2Fmod.json"), written atomically at every change.
const twinsDir = "twins"

// twinStore holds every identity's twin and persists each change before
// it is reported as done. Each twin has its own lock, so a slow write to
// one twin never holds up another.
type twinStore struct {
	dir string
	mu  sync.Mutex // guards twins (the map, not the entries)
	m   map[string]*twinEntry
}

// twinEntry is one identity's twin; mu serialises its operations and the
// writes of its file.
type twinEntry struct {
	mu   sync.Mutex
	twin *twindoc.Twin
}

// openTwins loads every twin file of dir/twins. A file that cannot be read
// or parsed is an error naming it: state is never silently reset.
func openTwins(dir string) (*twinStore, error) {
	s := &twinStore{dir: filepath.Join(dir, twinsDir), m: map[string]*twinEntry{}}
	if err := ensureDir(s.dir); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("twins: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() {
			continue // temporary files of an interrupted write, strays
		}
		clientID, err := url.PathUnescape(name)
		if err != nil {
			return nil, fmt.Errorf("twin file %s: name is not an escaped identity", filepath.Join(s.dir, e.Name()))
		}
		t, err := readTwin(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, err
		}
		s.m[clientID] = &twinEntry{twin: t}
	}
	return s, nil
}

// readTwin reads one twin file.
func readTwin(path string) (*twindoc.Twin, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}
	t := new(twindoc.Twin)
	if err := t.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("twin file %s is corrupt (move it away to start that twin afresh): %w", path, err)
	}
	return t, nil
}

// path is the file of clientID's twin.
func (s *twinStore) path(clientID string) string {
	return filepath.Join(s.dir, url.PathEscape(clientID)+".json")
}

// entry returns clientID's twin entry, nil when it has none.
func (s *twinStore) entry(clientID string) *twinEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[clientID]
}

// ensure gives clientID a new twin created at now unless it has one, and
// persists it. It is idempotent. The store's lock is not held during the
// write, so that creates of different identities write in parallel; the
// new entry's own lock is, so nobody reads it before it is on disk.
func (s *twinStore) ensure(clientID string, now time.Time) error {
	s.mu.Lock()
	if _, ok := s.m[clientID]; ok {
		s.mu.Unlock()
		return nil
	}
	e := &twinEntry{twin: twindoc.New(now)}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.m[clientID] = e
	s.mu.Unlock()
	if err := s.write(clientID, e.twin); err != nil {
		s.mu.Lock()
		if s.m[clientID] == e {
			delete(s.m, clientID)
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// remove deletes clientID's twin and its file; a missing twin is fine.
func (s *twinStore) remove(clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, clientID)
	if err := os.Remove(s.path(clientID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("twin: %w", err)
	}
	return nil
}

// write persists t as clientID's twin file.
func (s *twinStore) write(clientID string, t *twindoc.Twin) error {
	b, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("twin %s: %w", clientID, err)
	}
	return writeFileAtomic(s.path(clientID), b)
}

// errNoTwin is the *iothub.Error for an identity without a twin: 404001
// for a device, 404010 for a module.
func errNoTwin(clientID string) error {
	device, module := iothub.SplitClientID(clientID)
	if module != "" {
		return iothub.NewError(iothub.CodeModuleNotFound, "Module "+module+" on device "+device+" not registered")
	}
	return iothub.NewError(iothub.CodeDeviceNotFound, "Device "+device+" not registered")
}

// read runs f on clientID's twin under its lock. The error is errNoTwin's
// or f's.
func (s *twinStore) read(clientID string, f func(*twindoc.Twin) error) error {
	e := s.entry(clientID)
	if e == nil {
		return errNoTwin(clientID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.entry(clientID) != e { // its creation failed, or it was deleted meanwhile
		return errNoTwin(clientID)
	}
	return f(e.twin)
}

// modify runs f on a copy of clientID's twin under its lock and, when f
// succeeds, persists the copy and makes it current. On any error the twin
// stays as it was, in memory and on disk.
func (s *twinStore) modify(clientID string, f func(*twindoc.Twin) error) error {
	e := s.entry(clientID)
	if e == nil {
		return errNoTwin(clientID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	next := e.twin.Clone()
	if err := f(next); err != nil {
		return err
	}
	if s.entry(clientID) != e { // deleted meanwhile: do not resurrect its file
		return errNoTwin(clientID)
	}
	if err := s.write(clientID, next); err != nil {
		return err
	}
	e.twin = next
	return nil
}

// TwinUpdate is the outcome of a service-side twin write.
type twinUpdate struct {
	doc    []byte         // the whole updated twin, as the service API returns it
	change twindoc.Change // what the desired properties' subscriber is told
}

// twinDocument returns clientID's twin as the service API shows it.
func (h *Hub) twinDocument(clientID string) ([]byte, error) {
	var doc []byte
	err := h.twins.read(clientID, func(t *twindoc.Twin) error {
		doc = t.Document(h.identityFields(clientID))
		return nil
	})
	return doc, err
}

// updateTwin applies a service-side write (PATCH, or PUT with replace) to
// clientID's twin when etag ("" or "*" = any) matches its current etag,
// persists it, notifies a connected device that subscribed to desired
// changes, and returns the updated document. The error is an
// *iothub.Error: 404001/404010, 412001 on an etag mismatch, 400004 for a
// body the twin rules refuse; the twin is then unchanged.
func (h *Hub) updateTwin(clientID string, body []byte, replace bool, etag string) ([]byte, error) {
	var u twinUpdate
	err := h.twins.modify(clientID, func(t *twindoc.Twin) error {
		if etag != "" && etag != "*" && etag != t.ETag() {
			return iothub.NewError(iothub.CodePreconditionFailed, "Precondition failed: etag "+etag+" does not match the twin's "+t.ETag())
		}
		ch, err := t.Update(body, replace, h.opts.Now())
		if err != nil {
			return err
		}
		u = twinUpdate{doc: t.Document(h.identityFields(clientID)), change: ch}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.change.Desired != nil {
		h.notifyDesired(clientID, u.change)
	}
	return u.doc, nil
}
