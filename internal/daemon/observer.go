package daemon

import (
	"time"

	"github.com/methodd/methodd/internal/device"
)

// Observer is told what the daemon does, for metrics (internal/metrics
// implements it). Its methods are called from the daemon's goroutines,
// concurrently with each other, and must not block.
type Observer interface {
	// CallDone: one method call was answered with status after d. known is
	// false for a method the active handlers do not have (its name is the
	// caller's, unbounded).
	CallDone(method string, known bool, status int, d time.Duration)
	// Connected: the session is up (true) or down (false).
	Connected(up bool)
	// Reconnected: the session is up again after it was lost (not at the
	// first connection, nor at a SAS token renewal).
	Reconnected()
	// Reloaded: a reload was applied (ok) or rejected or refused (!ok),
	// started at at. Run reports the start-up load as a success at its
	// Set's LoadedAt.
	Reloaded(ok bool, at time.Time)
	// TasksRunning is called once, before the session starts, with the
	// function that counts the running tasks of async methods.
	TasksRunning(count func() int)
}

// noObserver is the Observer of a Config without one.
type noObserver struct{}

func (noObserver) CallDone(string, bool, int, time.Duration) {}
func (noObserver) Connected(bool)                            {}
func (noObserver) Reconnected()                              {}
func (noObserver) Reloaded(bool, time.Time)                  {}
func (noObserver) TasksRunning(func() int)                   {}

// sessionObserver turns session states into Observer calls. Its onState is
// called from the session's one goroutine (device.Config.OnState).
type sessionObserver struct {
	obs       Observer
	everUp    bool // a connection was up before
	lostSince bool // the session was down since the last connection was up
}

// onState reports st: Connected is up, and a reconnection when the
// session was down after an earlier connection; a Disconnected that is not
// a failed renewal (the old connection stays up), or Stopped, is down.
func (s *sessionObserver) onState(st device.State) {
	switch {
	case st.Kind == device.Connected:
		if s.everUp && s.lostSince {
			s.obs.Reconnected()
		}
		s.everUp, s.lostSince = true, false
		s.obs.Connected(true)
	case st.Kind == device.Disconnected && !st.Renewal, st.Kind == device.Stopped:
		s.lostSince = true
		s.obs.Connected(false)
	}
}

// reloadObserved reports a reload result: Unchanged is not a reload.
func reloadObserved(obs Observer, res ReloadResult) {
	if res.Outcome != ReloadUnchanged {
		obs.Reloaded(res.Outcome == ReloadApplied, res.At)
	}
}
