package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/methodd/methodd/iothub"
)

// RegistryRequestTimeout bounds one registry request (each attempt), within
// the caller's context.
const RegistryRequestTimeout = 30 * time.Second

// ErrMalformedDevice is wrapped when the hub answers 200 with a body that is
// not a device identity. The body is not returned: it may hold keys.
var ErrMalformedDevice = errors.New("hub answered with a malformed device identity")

// Device is a device identity as the registry holds it. Its keys are
// secrets: String, GoString and LogValue show the id only, so printing or
// logging a Device never shows them.
type Device struct {
	// ID is the device id.
	ID string
	// Status is "enabled" or "disabled" (the hub's spelling).
	Status string
	// ETag is the identity's etag, unquoted.
	ETag string
	// AuthType is the authentication type: "sas", "selfSigned" or
	// "certificateAuthority".
	AuthType string
	// PrimaryKey and SecondaryKey are the base64 symmetric keys of a "sas"
	// identity (empty for the others).
	PrimaryKey, SecondaryKey string
	// Created is set by CreateDevice when its request created the device;
	// false when the device already existed and was read instead.
	Created bool
}

// String is the device id; never the keys.
func (d Device) String() string { return d.ID }

// GoString is the device id and status; never the keys.
func (d Device) GoString() string {
	return fmt.Sprintf("invoke.Device{ID:%q, Status:%q, AuthType:%q}", d.ID, d.Status, d.AuthType)
}

// LogValue is the device id; never the keys.
func (d Device) LogValue() slog.Value { return slog.StringValue(d.ID) }

// createBody is the body of a create: a SAS identity whose keys the hub
// generates, as `az iot hub device-identity create` sends it.
type createBody struct {
	DeviceID       string `json:"deviceId"`
	Status         string `json:"status"`
	Authentication struct {
		Type         string `json:"type"`
		SymmetricKey struct {
			PrimaryKey   *string `json:"primaryKey"`
			SecondaryKey *string `json:"secondaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
	Capabilities struct {
		IotEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
}

// CreateDevice registers device id with keys the hub generates (PUT
// /devices/{id} without If-Match) and returns it with Created set. When
// the hub answers 409001 DeviceAlreadyExists it reads the device instead
// (GetDevice) and returns that, Created false, so that a caller can
// register the same ids again. A non-200 answer is a *iothub.Error (errors.As;
// 401 for a policy without registry write, 400004 for an invalid id);
// transport failures are wrapped. Throttled (429) and unavailable (503)
// answers are retried per the client's RetryPolicy: the hub applied
// nothing then, and a create that did land is found by the 409 path. No
// error holds a key.
func (c *Client) CreateDevice(ctx context.Context, id string) (Device, error) {
	if id == "" {
		return Device{}, fmt.Errorf("create device: %w: empty device id", ErrTarget)
	}
	var b createBody
	b.DeviceID, b.Status, b.Authentication.Type = id, "enabled", "sas"
	body, _ := json.Marshal(b)
	d, err := c.registryRequest(ctx, outgoing{method: http.MethodPut, url: c.deviceURL(id), body: body})
	var he *iothub.Error
	if errors.As(err, &he) && (he.Code == iothub.CodeDeviceAlreadyExists || he.Name == "DeviceAlreadyExists") {
		return c.GetDevice(ctx, id)
	}
	if err != nil {
		return Device{}, fmt.Errorf("create device %s: %w", id, err)
	}
	d.Created = true
	return d, nil
}

// GetDevice reads device id (GET /devices/{id}). A non-200 answer is a
// *iothub.Error (404001 for an unknown device); other failures and retries
// are as for CreateDevice.
func (c *Client) GetDevice(ctx context.Context, id string) (Device, error) {
	if id == "" {
		return Device{}, fmt.Errorf("get device: %w: empty device id", ErrTarget)
	}
	d, err := c.registryRequest(ctx, outgoing{method: http.MethodGet, url: c.deviceURL(id)})
	if err != nil {
		return Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	return d, nil
}

// DeleteDevice removes device id and its modules (DELETE /devices/{id},
// If-Match "*": whatever its etag). The hub answers 204; an unknown device
// is a *iothub.Error with 404001. Other failures and retries are as for
// CreateDevice.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("delete device: %w: empty device id", ErrTarget)
	}
	o := outgoing{method: http.MethodDelete, url: c.deviceURL(id), ifMatch: `"*"`, limit: RegistryRequestTimeout}
	_, err := c.withRetries(ctx, func() (time.Duration, error) {
		_, retryAfter, err := c.send(ctx, o)
		var he *iothub.Error
		if errors.As(err, &he) && he.HTTPStatus == http.StatusNoContent {
			return 0, nil // send takes every answer but 200 for an error
		}
		return retryAfter, err
	})
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	return nil
}

// deviceURL is the registry REST URL of device id.
func (c *Client) deviceURL(id string) string {
	return c.base + iothub.DevicePath(id, "") + "?" + iothub.MethodsQuery
}

// deviceJSON is the part of the hub's device identity that Device holds.
type deviceJSON struct {
	DeviceID       string `json:"deviceId"`
	ETag           string `json:"etag"`
	Status         string `json:"status"`
	Authentication struct {
		Type         string `json:"type"`
		SymmetricKey struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
}

// registryRequest makes o, with retries, and decodes the 200 body as a
// device identity.
func (c *Client) registryRequest(ctx context.Context, o outgoing) (Device, error) {
	o.limit = RegistryRequestTimeout
	var raw []byte
	_, err := c.withRetries(ctx, func() (retryAfter time.Duration, err error) {
		raw, retryAfter, err = c.send(ctx, o)
		return retryAfter, err
	})
	if err != nil {
		return Device{}, err
	}
	var j deviceJSON
	if err := json.Unmarshal(raw, &j); err != nil || j.DeviceID == "" {
		return Device{}, ErrMalformedDevice
	}
	a := j.Authentication
	return Device{ID: j.DeviceID, Status: j.Status, ETag: j.ETag, AuthType: a.Type,
		PrimaryKey: a.SymmetricKey.PrimaryKey, SecondaryKey: a.SymmetricKey.SecondaryKey}, nil
}
