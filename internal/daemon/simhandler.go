package daemon

import (
	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
)

// NewHandler is the daemon's engine↔device adapter for a session that Run
// does not own (`methodd simulate` runs thousands of sessions on one
// engine): every request becomes one call on eng's active Set on behalf of
// deviceID (and moduleID, "" for a device identity). Many handlers may
// share eng; a handler holds no other state.
func NewHandler(eng *engine.Engine, deviceID, moduleID string) device.Handler {
	return handler{eng: eng, deviceID: deviceID, moduleID: moduleID, onCall: func() {}, obs: noObserver{}}
}
