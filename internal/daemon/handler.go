// Package serve connects the engine to a device session: each method
// request the session receives becomes one engine call, on behalf of the
// identity the session runs as. It is the one adapter between the two
// (methodd run, the benchmark and the device and reliability tests use it),
// so that what they measure and test is what the daemon runs.
package serve

import (
	"context"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
)

// Handler answers a device session's requests with Engine's active
// handler set. It implements device.Handler.
type Handler struct {
	Engine   *engine.Engine
	DeviceID string
	ModuleID string // "" for a device identity
	// OnCall, when set, is called at the start of every call.
	OnCall func()
}

// HandleMethod runs r on the engine. The reply's buffer goes back to the
// engine once the session has written it (device.Response.Release).
func (h Handler) HandleMethod(ctx context.Context, r device.Request) device.Response {
	if h.OnCall != nil {
		h.OnCall()
	}
	rep := h.Engine.Call(ctx, engine.Request{
		Method:    r.Method,
		RequestID: r.RID,
		DeviceID:  h.DeviceID,
		ModuleID:  h.ModuleID,
		Payload:   r.Payload,
	})
	return device.Response{Status: rep.Status, Payload: rep.Payload, Release: rep.Release}
}
