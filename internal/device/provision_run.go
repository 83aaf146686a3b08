package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// dpsResponse is one answer of DPS to a request.
type dpsResponse struct {
	status     int
	retryAfter time.Duration
	body       []byte
}

// run drives the registration state machine of §5.5 on the open
// connection: register, then poll while "assigning".
func (p *provisioner) run(ctx context.Context) (Assignment, error) {
	operationID := "" // "" = the next request is a register
	retries := 0
	for {
		r, err := p.request(ctx, operationID)
		if err != nil {
			return Assignment{}, err
		}
		if r.status >= http.StatusTooManyRequests {
			if retries++; retries > dpsMaxRetries {
				return Assignment{}, provisionError(r)
			}
			p.log.Info("dps busy, retrying", logkey.Status, r.status, logkey.RetryInMs, retryDelay(r.retryAfter).Milliseconds(), logkey.Attempt, retries)
			if !sleep(ctx, retryDelay(r.retryAfter)) {
				return Assignment{}, ctx.Err()
			}
			continue // the same request again
		}
		if r.status >= 300 || r.status < 200 {
			return Assignment{}, provisionError(r)
		}
		var op iothub.DPSOperation
		if err := json.Unmarshal(r.body, &op); err != nil {
			return Assignment{}, fmt.Errorf("dps: %d response is not an operation: %w", r.status, err)
		}
		switch strings.ToLower(op.Status) {
		case iothub.DPSStatusAssigned:
			return p.assigned(op)
		case iothub.DPSStatusAssigning:
			if op.OperationID == "" {
				return Assignment{}, errors.New("dps: assigning without an operationId")
			}
			operationID = op.OperationID
		case "registering":
			operationID = ""
		case iothub.DPSStatusFailed, iothub.DPSStatusDisabled:
			return Assignment{}, registrationFailed(r.status, op)
		default:
			return Assignment{}, fmt.Errorf("dps: unknown registration status %q", op.Status)
		}
		if !sleep(ctx, retryDelay(r.retryAfter)) {
			return Assignment{}, ctx.Err()
		}
	}
}

// request publishes a register (operationID "") or a poll with a fresh
// $rid and waits for its response.
func (p *provisioner) request(ctx context.Context, operationID string) (dpsResponse, error) {
	rid := iothub.NewRequestID()
	topic, body := iothub.DPSPollTopic(rid, operationID), []byte(" ") // the Node SDK's poll body
	if operationID == "" {
		b, err := json.Marshal(iothub.DPSRegisterRequest{RegistrationID: p.cfg.RegistrationID, Payload: p.cfg.Payload})
		if err != nil {
			return dpsResponse{}, fmt.Errorf("dps: payload: %w", err)
		}
		topic, body = iothub.DPSRegisterTopic(rid), b
	}
	if err := p.wait(ctx, p.client.Publish(topic, 1, false, body), "publish"); err != nil {
		return dpsResponse{}, err
	}
	return p.await(ctx, rid)
}

// await waits for the response with $rid rid, at most RequestTimeout;
// responses to other requests are ignored.
func (p *provisioner) await(ctx context.Context, rid string) (dpsResponse, error) {
	t := time.NewTimer(p.cfg.RequestTimeout)
	defer t.Stop()
	for {
		select {
		case m := <-p.msgs:
			status, got, retryAfter, err := iothub.ParseDPSResponseTopic(m.Topic())
			if err != nil || got != rid {
				p.log.Debug("dps message ignored", logkey.Topic, m.Topic())
				continue
			}
			p.log.Debug("dps response", logkey.Status, status, logkey.Payload, string(m.Payload()))
			return dpsResponse{status: status, retryAfter: retryAfter, body: m.Payload()}, nil
		case err := <-p.lost:
			return dpsResponse{}, fmt.Errorf("dps: connection lost: %w", err)
		case <-t.C:
			return dpsResponse{}, fmt.Errorf("dps: %w: request %s unanswered after %s", ErrProvisionTimeout, rid, p.cfg.RequestTimeout)
		case <-ctx.Done():
			return dpsResponse{}, ctx.Err()
		}
	}
}

// assigned turns an "assigned" operation into the Assignment.
func (p *provisioner) assigned(op iothub.DPSOperation) (Assignment, error) {
	if op.RegistrationState == nil || op.RegistrationState.AssignedHub == "" || op.RegistrationState.DeviceID == "" {
		return Assignment{}, errors.New("dps: assigned without assignedHub and deviceId")
	}
	st := *op.RegistrationState
	p.log.Info("dps registration assigned", logkey.AssignedHub, st.AssignedHub, logkey.DeviceID, st.DeviceID, logkey.Substatus, st.Substatus)
	return Assignment{AssignedHub: st.AssignedHub, DeviceID: st.DeviceID, Substatus: st.Substatus, State: st}, nil
}

// provisionError is the error of an error response, from its JSON body
// when it has one.
func provisionError(r dpsResponse) *ProvisionError {
	var body iothub.DPSError
	_ = json.Unmarshal(r.body, &body) // a body that is not an error leaves the fields empty
	return &ProvisionError{
		Status:     r.status,
		ErrorCode:  body.ErrorCode,
		TrackingID: body.TrackingID,
		Message:    body.Message,
		RetryAfter: r.retryAfter,
	}
}

// registrationFailed is the error of a 200 whose status is failed or
// disabled.
func registrationFailed(status int, op iothub.DPSOperation) *ProvisionError {
	e := &ProvisionError{Status: status, Message: "registration " + strings.ToLower(op.Status)}
	if st := op.RegistrationState; st != nil {
		e.ErrorCode = st.ErrorCode
		if st.ErrorMessage != "" {
			e.Message += ": " + st.ErrorMessage
		}
	}
	return e
}

// retryDelay is the wait a retry-after asks for: 2 s when there is none,
// at most 60 s.
func retryDelay(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return dpsDefaultRetryAfter
	case d > dpsMaxRetryAfter:
		return dpsMaxRetryAfter
	}
	return d
}
