package daemon

import (
	"context"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
)

// handler is the one adapter from a device session's requests to engine
// calls: each request becomes one call on the engine's active Set, on behalf
// of the identity the session runs as. It implements device.Handler.
type handler struct {
	eng      *engine.Engine
	deviceID string
	moduleID string // "" for a device identity
	// who, when set, names the identity instead of deviceID and moduleID,
	// at every call: the session's current one, which DPS provisioning
	// may replace.
	who    func() (deviceID, moduleID string)
	onCall func()   // called at the start of every call
	obs    Observer // told of every call answered
}

// HandleMethod runs r on the engine. The reply's buffer goes back to the
// engine once the session has written it (device.Response.Release), and
// what the call still has to do then (engine.Reply.After: a detach method
// starts its command) runs once it is published (device.Response.AfterSend).
func (h handler) HandleMethod(ctx context.Context, r device.Request) device.Response {
	h.onCall()
	start := time.Now()
	deviceID, moduleID := h.deviceID, h.moduleID
	if h.who != nil {
		deviceID, moduleID = h.who()
	}
	rep := h.eng.Call(ctx, engine.Request{
		Method:    r.Method,
		RequestID: r.RID,
		DeviceID:  deviceID,
		ModuleID:  moduleID,
		Payload:   r.Payload,
	})
	h.obs.CallDone(r.Method, h.eng.Knows(r.Method), rep.Status, time.Since(start))
	return device.Response{Status: rep.Status, Payload: rep.Payload, Release: rep.Release, AfterSend: rep.After}
}
