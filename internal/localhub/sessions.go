package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionsDir holds the subscriptions of persistent (clean session 0)
// sessions, one file per client id (the escaped id, as twins/ names
// them), so that they outlive a hub restart as they outlive a reconnect:
// the Node SDK never subscribes to the twin topics again after its first
// time (fleet reference §1.6 item 4). A file per client keeps a connect's
// write small however many devices the hub has.
const sessionsDir = "sessions"

// savedSub is one persisted subscription.
type savedSub struct {
	Filter string `json:"filter"`
	QoS    byte   `json:"qos"`
}

// sessionStore persists the subscriptions of every persistent session and
// remembers which connections had theirs restored from it. Changes of one
// client id are serialised by that id's lock (locks); mu guards the maps
// only, never a write.
type sessionStore struct {
	dir      string
	locks    sync.Map // client id → *sync.Mutex
	mu       sync.Mutex
	subs     map[string][]savedSub // client id → filters, sorted
	restored map[*mqtt.Client]bool // connections given saved subscriptions
}

// openSessions reads dir/sessions/; a missing directory is an empty store,
// a corrupt file an error naming it.
func openSessions(dir string) (*sessionStore, error) {
	s := &sessionStore{dir: filepath.Join(dir, sessionsDir), subs: map[string][]savedSub{}, restored: map[*mqtt.Client]bool{}}
	if err := ensureDir(s.dir); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() {
			continue // temporary files of an interrupted write
		}
		path := filepath.Join(s.dir, e.Name())
		id, err := url.PathUnescape(name)
		if err != nil {
			return nil, fmt.Errorf("session file %s: name is not an escaped client id", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		var subs []savedSub
		if err := json.Unmarshal(b, &subs); err != nil {
			return nil, fmt.Errorf("session file %s is corrupt (move it away to forget that persistent session): %w", path, err)
		}
		s.subs[id] = subs
	}
	return s, nil
}

// path is clientID's session file.
func (s *sessionStore) path(clientID string) string {
	return filepath.Join(s.dir, url.PathEscape(clientID)+".json")
}

// lock takes clientID's lock and returns its release.
func (s *sessionStore) lock(clientID string) func() {
	m, _ := s.locks.LoadOrStore(clientID, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// record stores cl's current subscriptions when its session is
// persistent, and forgets them when it is not.
func (s *sessionStore) record(cl *mqtt.Client) error {
	var subs []savedSub
	if !cl.Properties.Clean {
		for f, sub := range cl.State.Subscriptions.GetAll() {
			subs = append(subs, savedSub{Filter: f, QoS: sub.Qos})
		}
		slices.SortFunc(subs, func(a, b savedSub) int { return strings.Compare(a.Filter, b.Filter) })
	}
	defer s.lock(cl.ID)()
	s.mu.Lock()
	old, had := s.subs[cl.ID]
	s.mu.Unlock()
	switch {
	case len(subs) == 0 && !had, len(subs) > 0 && slices.Equal(old, subs):
		return nil
	case len(subs) == 0:
		return s.removeLocked(cl.ID)
	}
	if err := writeJSONAtomic(s.path(cl.ID), subs); err != nil {
		return err
	}
	s.mu.Lock()
	s.subs[cl.ID] = subs
	s.mu.Unlock()
	return nil
}

// removeLocked deletes clientID's saved session, on disk first. The caller
// holds clientID's lock.
func (s *sessionStore) removeLocked(clientID string) error {
	if err := os.Remove(s.path(clientID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sessions: %w", err)
	}
	s.mu.Lock()
	delete(s.subs, clientID)
	s.mu.Unlock()
	return nil
}

// restore gives cl, connecting with clean session 0 to a broker that holds
// no session for it (the hub restarted), the subscriptions saved for its id.
// Its CONNACK then says the session is present (takeRestored).
func (s *sessionStore) restore(b *mqtt.Server, cl *mqtt.Client) {
	if _, ok := b.Clients.Get(cl.ID); ok || cl.Properties.Clean {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.subs[cl.ID]
	for _, sv := range subs {
		sub := packets.Subscription{Filter: sv.Filter, Qos: sv.QoS}
		b.Topics.Subscribe(cl.ID, sub)
		cl.State.Subscriptions.Add(sv.Filter, sub)
	}
	if len(subs) > 0 {
		s.restored[cl] = true
	}
}

// takeRestored reports, once, whether cl had its subscriptions restored.
func (s *sessionStore) takeRestored(cl *mqtt.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.restored[cl]
	delete(s.restored, cl)
	return ok
}

// forget drops cl from the restored set (it disconnected before its
// CONNACK was encoded).
func (s *sessionStore) forget(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.restored, cl)
}

// drop forgets the saved subscriptions of clientID (a deleted identity,
// whose successor of the same id must start afresh).
func (s *sessionStore) drop(clientID string) error {
	defer s.lock(clientID)()
	return s.removeLocked(clientID)
}
