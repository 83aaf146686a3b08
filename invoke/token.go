package invoke

import (
	"sync"
	"time"

	"github.com/methodd/methodd/iothub"
)

// tokenSource mints the service SAS for a hub and caches it: one token is
// shared by every request until 80 % of its lifetime has passed, then the next
// caller signs a fresh one. It is safe for concurrent use.
type tokenSource struct {
	resource, key, keyName string
	ttl                    time.Duration
	now                    func() time.Time

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// Token returns a token valid for at least 20 % of the TTL from now.
func (s *tokenSource) Token() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.token != "" && now.Before(s.renewAt) {
		return s.token, nil
	}
	expiry := now.Add(s.ttl)
	tok, err := iothub.Sign(s.resource, s.key, s.keyName, expiry)
	if err != nil {
		return "", err
	}
	s.token = tok
	s.renewAt = now.Add(s.ttl * 8 / 10)
	return tok, nil
}
