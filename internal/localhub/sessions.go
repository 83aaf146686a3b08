package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionsFile holds the subscriptions of persistent (clean session 0)
// sessions, so that they outlive a hub restart as they outlive a
// reconnect: the Node SDK never subscribes to the twin topics again after
// its first time (fleet reference §1.6 item 4).
const sessionsFile = "sessions.json"

// savedSub is one persisted subscription.
type savedSub struct {
	Filter string `json:"filter"`
	QoS    byte   `json:"qos"`
}

// sessionStore persists the subscriptions of every persistent session and
// remembers which connections had theirs restored from it.
type sessionStore struct {
	path     string
	mu       sync.Mutex
	subs     map[string][]savedSub // client id → filters, sorted
	restored map[*mqtt.Client]bool // connections given saved subscriptions
}

// openSessions reads dir/sessions.json; a missing file is an empty store, a
// corrupt one an error naming it.
func openSessions(dir string) (*sessionStore, error) {
	s := &sessionStore{path: filepath.Join(dir, sessionsFile), subs: map[string][]savedSub{}, restored: map[*mqtt.Client]bool{}}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("sessions: %w", err)
	}
	if err := json.Unmarshal(b, &s.subs); err != nil {
		return nil, fmt.Errorf("sessions file %s is corrupt (move it away to forget persistent sessions): %w", s.path, err)
	}
	return s, nil
}

// saveLocked writes the store. Callers hold s.mu.
func (s *sessionStore) saveLocked() error { return writeJSONAtomic(s.path, s.subs) }

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
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.subs[cl.ID]
	if len(subs) == 0 {
		if !had {
			return nil
		}
		delete(s.subs, cl.ID)
	} else {
		if slices.Equal(old, subs) {
			return nil
		}
		s.subs[cl.ID] = subs
	}
	return s.saveLocked()
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[clientID]; !ok {
		return nil
	}
	delete(s.subs, clientID)
	return s.saveLocked()
}
