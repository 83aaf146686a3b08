package main

import (
	"context"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
)

// engineHandler answers the device session's requests with the engine,
// filling in the identity the daemon runs as, and counts them.
type engineHandler struct {
	eng                *engine.Engine
	deviceID, moduleID string
	calls              *callCounter
}

// HandleMethod runs r on the engine's active handler set.
func (h engineHandler) HandleMethod(ctx context.Context, r device.Request) device.Response {
	h.calls.add()
	rep := h.eng.Call(ctx, engine.Request{
		Method:    r.Method,
		RequestID: r.RID,
		DeviceID:  h.deviceID,
		ModuleID:  h.moduleID,
		Payload:   r.Payload,
	})
	return device.Response{Status: rep.Status, Payload: rep.Payload, Release: rep.Release}
}
