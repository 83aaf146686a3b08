package localhub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Invoke calls a direct method on a device or module, as the REST API does:
//
//   - a request the REST API would refuse is 400004 ArgumentInvalid (method
//     name, timeouts out of range) or 413001 MessageTooLarge (payload);
//   - an unregistered device is 404001 DeviceNotFound, an unregistered module
//     404010 ModuleNotFound (an id holding '/' names neither);
//   - the hub waits up to ConnectTimeoutInSeconds for the identity to be
//     connected and subscribed to $iothub/methods/POST/#, else 404103
//     DeviceNotOnline (immediately when the timeout is 0 and no takeover is
//     in progress);
//   - the request is published at QoS 0 on
//     $iothub/methods/POST/{method}/?$rid={rid}, rid being a per-hub decimal
//     counter, with the payload's JSON bytes verbatim (null as "null");
//   - it waits up to ResponseTimeoutInSeconds (0 means the default, 30) for
//     the reply with that rid from that identity, else 504101 GatewayTimeout.
//     If the device disconnects meanwhile the call keeps waiting, as the real
//     hub does; a reply on a new connection of the same identity still counts.
//
// The result's Payload is the device's bytes verbatim, nil for an empty
// body. Decisions where the real hub is unverified or unhelpful: a reply
// body over 128 KB fails the call with 413001 MessageTooLarge; a body that is
// not JSON yields {"status":500,"payload":null}, as IoT Edge does, never
// invalid JSON. While a new connection of the identity takes over the live
// one, calls wait (up to 5 s) for its CONNACK rather than fail; a call
// written to a connection that closed since it was found is sent on its
// successor, or fails with 404103 when there is none. ctx cancellation
// ends the wait (500001); Close fails pending calls with 503001
// ServiceUnavailable.
//
// A failed call's error is an *iothub.Error (errors.As) with the hub's code.
func (h *Hub) Invoke(ctx context.Context, deviceID, moduleID string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	start := time.Now()
	res, rid, err := h.invoke(ctx, deviceID, moduleID, req)
	if h.log.Enabled(ctx, slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String(logkey.DeviceID, deviceID), slog.String(logkey.ModuleID, moduleID),
			slog.String(logkey.Method, req.MethodName), slog.String(logkey.RequestID, rid),
			slog.Int64(logkey.DurationMs, time.Since(start).Milliseconds()),
		}
		if he, ok := errors.AsType[*iothub.Error](err); ok {
			attrs = append(attrs, slog.Int(logkey.ErrorCode, he.Code))
		} else {
			attrs = append(attrs, slog.Int(logkey.Status, res.Status))
		}
		h.log.LogAttrs(ctx, slog.LevelInfo, "method call", attrs...)
	}
	return res, err
}

// invoke is Invoke without the log line; it also returns the call's $rid
// ("" when the call failed before one was drawn). Every error it returns is
// an *iothub.Error.
func (h *Hub) invoke(ctx context.Context, device, module string, req iothub.MethodRequest) (iothub.MethodResult, string, error) {
	var none iothub.MethodResult
	clientID, err := h.target(&req, device, module)
	if err != nil {
		return none, "", err
	}
	rid := h.nextRID()
	pending := h.calls.add(rid, clientID)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   iothub.MethodRequestTopic(req.MethodName, rid),
		Payload:     h.requestPayload(req.Payload),
	}
	if err := h.send(ctx, clientID, req.ConnectTimeoutInSeconds, pk); err != nil {
		h.calls.drop(rid)
		return none, rid, err
	}
	t := time.NewTimer(time.Duration(req.ResponseTimeoutInSeconds) * time.Second)
	defer t.Stop()
	select {
	case r := <-pending.ch:
		res, err := result(r)
		return res, rid, err
	case <-t.C:
	case <-ctx.Done():
	case <-h.done:
	}
	h.calls.drop(rid)
	if err := h.stopped(ctx); err != nil {
		return none, rid, err
	}
	return none, rid, iothub.NewError(iothub.CodeGatewayTimeout, "Timed out waiting for the response from device.")
}

// target validates req (applying its default response timeout) and returns
// the client id of the registered identity it is for: 404001 for an unknown
// device, 404010 for an unknown module. An id holding '/' (from an escaped
// %2F in a REST path) names no identity, never a device/module pair.
func (h *Hub) target(req *iothub.MethodRequest, device, module string) (string, error) {
	if err := checkRequest(req); err != nil {
		return "", err
	}
	if _, ok := h.reg.key(device); !ok || strings.Contains(device, "/") {
		return "", iothub.NewError(iothub.CodeDeviceNotFound, "The device with ID '"+device+"' does not exist.")
	}
	clientID := iothub.ClientID(device, module)
	if _, ok := h.reg.key(clientID); !ok || strings.Contains(module, "/") {
		return "", iothub.NewError(iothub.CodeModuleNotFound, "The module with ID '"+module+"' on device '"+device+"' does not exist.")
	}
	return clientID, nil
}

// sendAttempts bounds how often send tries again after a write failed
// because the connection it found had closed meanwhile.
const sendAttempts = 3

// send writes pk to the identity's live connection once it is connected and
// subscribed (waiting as presence.await does, within one connect timeout
// for all attempts) and its CONNACK is out. A connection found just before
// a takeover marked it is closed by the time it is written to: the write
// fails and send looks again, which finds (or waits for) the successor.
// Otherwise the call fails with 404103.
func (h *Hub) send(ctx context.Context, clientID string, connectTimeoutSeconds int, pk packets.Packet) error {
	deadline := time.Now().Add(time.Duration(connectTimeoutSeconds) * time.Second)
	for range sendAttempts {
		cl := h.presence.await(ctx, clientID, time.Until(deadline), h.done)
		if cl == nil {
			break
		}
		select { // a client just found may hold presence before its CONNACK is out
		case <-h.presence.connackWritten(cl):
		case <-ctx.Done():
		case <-h.done:
		}
		if err := h.stopped(ctx); err != nil {
			return err
		}
		if cl.WritePacket(pk) == nil {
			return nil
		}
	}
	if err := h.stopped(ctx); err != nil {
		return err
	}
	return notOnline(connectTimeoutSeconds)
}

// checkRequest validates a request given to Invoke directly (the REST path
// has validated it already) and applies the default response timeout. The
// error is an *iothub.Error: 400004 ArgumentInvalid or 413001.
func checkRequest(req *iothub.MethodRequest) error {
	if req.ResponseTimeoutInSeconds == 0 {
		req.ResponseTimeoutInSeconds = iothub.DefaultResponseTimeout
	}
	switch {
	case !iothub.ValidMethodName(req.MethodName):
		return iothub.NewError(iothub.CodeArgumentInvalid, "methodName is not a valid method name.")
	case len(req.Payload) > iothub.MaxPayloadBytes:
		return iothub.NewError(iothub.CodeMessageTooLarge, "The method payload exceeds the maximum size of 128 KB.")
	case req.ResponseTimeoutInSeconds < iothub.MinResponseTimeout || req.ResponseTimeoutInSeconds > iothub.MaxResponseTimeout:
		return iothub.NewError(iothub.CodeArgumentInvalid, "responseTimeoutInSeconds must be an integer from 5 to 300.")
	case req.ConnectTimeoutInSeconds < 0 || req.ConnectTimeoutInSeconds > iothub.MaxConnectTimeout:
		return iothub.NewError(iothub.CodeArgumentInvalid, "connectTimeoutInSeconds must be an integer from 0 to 300.")
	}
	return nil
}

// stopped returns the error for a wait that ended because the hub closed
// (503001) or the caller gave up (500001), nil otherwise.
func (h *Hub) stopped(ctx context.Context) error {
	select {
	case <-h.done:
		return iothub.NewError(iothub.CodeServiceUnavailable, "The local hub is shutting down.")
	default:
	}
	if err := ctx.Err(); err != nil {
		return iothub.NewError(iothub.CodeServerError, "The invocation was abandoned: "+err.Error()+".")
	}
	return nil
}

// requestPayload is what the device receives: the JSON bytes, "null" for
// null (an empty body would make the Node SDK answer 400 itself, §9).
func (h *Hub) requestPayload(p json.RawMessage) []byte {
	if len(p) > 0 {
		return p
	}
	if h.opts.Faults.EmptyNullPayload {
		return nil
	}
	return []byte("null")
}

// result turns a device reply into the caller's result (see Invoke); a
// reply over 128 KB is an *iothub.Error with code 413001.
func result(r reply) (iothub.MethodResult, error) {
	p := r.payload
	switch {
	case len(bytes.TrimSpace(p)) == 0:
		p = nil
	case len(p) > iothub.MaxPayloadBytes:
		return iothub.MethodResult{}, iothub.NewError(iothub.CodeMessageTooLarge, "The device's response payload exceeds the maximum size of 128 KB.")
	case !json.Valid(p):
		return iothub.MethodResult{Status: 500}, nil
	}
	return iothub.MethodResult{Status: r.status, Payload: p}, nil
}

// notOnline is the 404103 DeviceNotOnline error of a call that waited
// connectTimeout seconds.
func notOnline(connectTimeout int) error {
	e := iothub.NewError(iothub.CodeDeviceNotOnline, "The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103")
	e.Info = json.RawMessage(fmt.Sprintf(`{"timeout":"%02d:%02d:%02d"}`, connectTimeout/3600, connectTimeout/60%60, connectTimeout%60))
	return e
}
