package device

import (
	"fmt"
	"time"
)

// StateKind is the kind of a session state change.
type StateKind int

// State kinds reported through Config.OnState.
const (
	// Connecting: a connection attempt starts.
	Connecting StateKind = iota
	// Connected: connected and subscribed to method requests (after SUBACK);
	// calls can be answered.
	Connected
	// Disconnected: the connection was lost or an attempt failed; the session
	// retries after RetryIn unless it is stopping.
	Disconnected
	// Stopped: Run is returning.
	Stopped
)

func (k StateKind) String() string {
	switch k {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("StateKind(%d)", int(k))
}

// State is one session state change.
type State struct {
	Kind StateKind
	// Conn numbers the connection attempt the change is about (1-based).
	Conn uint64
	// Renewal is true when this connection replaces a live one to renew the
	// SAS token (Connecting, Connected), or when a renewal attempt failed
	// while the old connection stays up (Disconnected).
	Renewal bool
	// Err is the cause of Disconnected.
	Err error
	// RetryIn is the delay before the next attempt (Disconnected).
	RetryIn time.Duration
	// Duplicate is true on a Disconnected when the hub has dropped the
	// connection within seconds of connecting several times in the last
	// minute: another client is probably connected as the same identity.
	Duplicate bool
}
