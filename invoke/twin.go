package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/methodd/methodd/iothub"
)

// TwinRequestTimeout bounds one twin request (each attempt), within the
// caller's context. The hub answers twin reads and writes at once; there is
// no device round trip to wait for.
const TwinRequestTimeout = 30 * time.Second

// ErrMalformedTwin is wrapped when the hub answers 200 with a body that is
// not a JSON object; the body is still returned with the error.
var ErrMalformedTwin = errors.New("hub answered with a malformed twin document")

// ErrTwinPatch is wrapped when UpdateTwin is given a patch that is not a
// JSON object, or an etag that cannot be sent; no request is made.
var ErrTwinPatch = errors.New("invalid twin update")

// GetTwin returns the twin of device, or of its module when module is not
// empty (GET /twins/{device}[/modules/{module}]), as the bytes of the hub's
// body verbatim. A non-200 answer is a *iothub.Error (find it with
// errors.As; 404001 or 404010 for an unknown identity); a 200 body that is
// not a JSON object is returned with an error wrapping ErrMalformedTwin;
// on any other error nothing is returned. Throttled (429) and
// unavailable (503) answers are retried per the client's RetryPolicy, as
// for Invoke; transport failures are wrapped and not retried. Each attempt
// is bounded by TwinRequestTimeout.
func (c *Client) GetTwin(ctx context.Context, device, module string) (json.RawMessage, error) {
	t := Target{Device: device, Module: module}
	if device == "" {
		return nil, fmt.Errorf("get twin: %w: empty device id", ErrTarget)
	}
	doc, err := c.twinRequest(ctx, outgoing{method: http.MethodGet, url: c.twinURL(t)})
	if err != nil {
		return doc, fmt.Errorf("get twin %s: %w", t, err)
	}
	return doc, nil
}

// UpdateTwin merges patch into the twin of device (or of its module) with
// PATCH /twins/{device}[/modules/{module}] and returns the whole updated
// twin as the bytes of the hub's body verbatim. patch is sent as given; it
// must be a JSON object, normally {"tags":{…},"properties":{"desired":{…}}}
// with either part. etag makes the write conditional: it is sent quoted in
// If-Match (see IfMatch), and "" sends "*", which matches any twin. A stale
// etag is a *iothub.Error with HTTPStatus 412 (412001 PreconditionFailed);
// other failures are as for GetTwin. A patch that is not a JSON object, or
// an etag IfMatch refuses, wraps ErrTwinPatch and sends nothing.
//
// Only 429 and 503 answers are retried: by them the hub says it refused
// the request without applying it, the rule that already lets Invoke
// repeat method calls, which are not idempotent either. A transport
// failure or a timeout, after which the write may have been applied, is
// never retried.
func (c *Client) UpdateTwin(ctx context.Context, device, module string, patch []byte, etag string) (json.RawMessage, error) {
	t := Target{Device: device, Module: module}
	if device == "" {
		return nil, fmt.Errorf("update twin: %w: empty device id", ErrTarget)
	}
	if !isJSONObject(patch) {
		return nil, fmt.Errorf("update twin %s: %w: the patch is not a JSON object", t, ErrTwinPatch)
	}
	ifMatch, err := IfMatch(etag)
	if err != nil {
		return nil, fmt.Errorf("update twin %s: %w", t, err)
	}
	doc, err := c.twinRequest(ctx, outgoing{method: http.MethodPatch, url: c.twinURL(t), body: patch, ifMatch: ifMatch})
	if err != nil {
		return doc, fmt.Errorf("update twin %s: %w", t, err)
	}
	return doc, nil
}

// IfMatch returns the If-Match header value for etag, quoted as the Node
// SDK sends it: "" and "*" become "*" (any twin); an etag already in
// double quotes is kept; anything else is put in quotes. An etag with a
// double quote inside, white space or a control character cannot be sent;
// the error wraps ErrTwinPatch.
func IfMatch(etag string) (string, error) {
	bare := etag
	if len(etag) >= 2 && strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`) {
		bare = etag[1 : len(etag)-1]
	}
	if bare == "" {
		bare = "*"
	}
	if strings.ContainsFunc(bare, func(r rune) bool { return r == '"' || r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%w: etag %q holds a quote, a space or a control character", ErrTwinPatch, etag)
	}
	return `"` + bare + `"`, nil
}

// twinURL is the REST URL of t's twin.
func (c *Client) twinURL(t Target) string {
	return c.base + iothub.TwinPath(t.Device, t.Module) + "?" + iothub.MethodsQuery
}

// twinRequest makes o, with retries, and checks that the 200 body is a
// JSON object; a malformed one is returned with ErrMalformedTwin, nothing
// with any other error.
func (c *Client) twinRequest(ctx context.Context, o outgoing) (json.RawMessage, error) {
	o.limit = TwinRequestTimeout
	var raw []byte
	_, err := c.withRetries(ctx, func() (retryAfter time.Duration, err error) {
		raw, retryAfter, err = c.send(ctx, o)
		return retryAfter, err
	})
	if err != nil {
		return nil, err
	}
	if !isJSONObject(raw) {
		return raw, ErrMalformedTwin
	}
	return raw, nil
}

// isJSONObject reports whether b is one valid JSON value that is an object.
func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}
