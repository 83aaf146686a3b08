package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/methodd/methodd/iothub"
)

// QueryRequestTimeout bounds one page request of a query (each attempt),
// within the caller's context.
const QueryRequestTimeout = 30 * time.Second

// MaxQueryPageSize is the largest page size the hub accepts (fleet
// reference §3.1).
const MaxQueryPageSize = 1000

// maxQueryBodyBytes bounds what is read of one page: up to 1000 twins of up
// to a few tens of KB each.
const maxQueryBodyBytes = 64 << 20

// ErrMalformedQueryPage is wrapped when the hub answers a query with 200
// and a body that is not a JSON array (of objects, for QueryDeviceIDs), or
// repeats the continuation token it was sent.
var ErrMalformedQueryPage = errors.New("hub answered with a malformed query page")

// ErrQuery is wrapped when Query is given an empty query or a page size
// out of range; no request is made.
var ErrQuery = errors.New("invalid query")

// Query runs sql (`SELECT * FROM devices [WHERE …]`, fleet reference §3)
// with POST /devices/query and calls each with every item of every page,
// in the hub's order, as the bytes of the hub's body verbatim (each item
// one JSON value). It follows x-ms-continuation until a page comes without
// one. pageSize is sent as x-ms-max-item-count (1..MaxQueryPageSize); 0
// sends none, and the hub picks its default.
//
// An error from each stops the query and is returned as it is. A non-200
// answer is a *iothub.Error (find it with errors.As: a query the hub
// cannot parse is 400, with the position in its message); a page that is
// not a JSON array wraps ErrMalformedQueryPage; an empty sql or a page
// size out of range wraps ErrQuery and sends nothing. Throttled (429) and
// unavailable (503) answers are retried per the client's RetryPolicy
// (queries change nothing); transport failures are wrapped and not
// retried. Each page request is bounded by QueryRequestTimeout.
func (c *Client) Query(ctx context.Context, sql string, pageSize int, each func(item json.RawMessage) error) error {
	if sql == "" {
		return fmt.Errorf("query: %w: empty query", ErrQuery)
	}
	if pageSize < 0 || pageSize > MaxQueryPageSize {
		return fmt.Errorf("query: %w: page size %d out of 0..%d", ErrQuery, pageSize, MaxQueryPageSize)
	}
	body, err := json.Marshal(struct {
		Query string `json:"query"`
	}{sql})
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	o := outgoing{method: http.MethodPost, url: c.base + "/devices/query?" + iothub.MethodsQuery, body: body,
		maxBody: maxQueryBodyBytes, limit: QueryRequestTimeout}
	var eachErr error
	err = c.paginate(ctx, o, pageSize, ErrMalformedQueryPage, func(item json.RawMessage) error {
		eachErr = each(item)
		return eachErr
	})
	switch {
	case err == nil:
		return nil
	case eachErr != nil && err == eachErr: //nolint:errorlint // identity on purpose: each's own error is returned unchanged, anything else is wrapped.
		return err
	}
	return fmt.Errorf("query: %w", err)
}

// QueryDeviceIDs returns the ids of the devices whose twins satisfy where,
// a WHERE condition of the query language ("tags.site = 'a'", "deviceId
// IN ['a','b']"; "" or "*" selects every device, as "*" does in a job's
// queryCondition), in the hub's order, reading pages of MaxQueryPageSize.
// Errors are Query's for WhereQuery(where); an item without a deviceId
// wraps ErrMalformedQueryPage.
func (c *Client) QueryDeviceIDs(ctx context.Context, where string) ([]string, error) {
	var ids []string
	err := c.Query(ctx, WhereQuery(where), MaxQueryPageSize, func(item json.RawMessage) error {
		var twin struct {
			DeviceID string `json:"deviceId"`
		}
		if err := json.Unmarshal(item, &twin); err != nil || twin.DeviceID == "" {
			return fmt.Errorf("query: %w: an item has no deviceId", ErrMalformedQueryPage)
		}
		ids = append(ids, twin.DeviceID)
		return nil
	})
	return ids, err
}

// WhereQuery is the query QueryDeviceIDs sends for where: `SELECT * FROM
// devices WHERE <where>`, or `SELECT * FROM devices` for "" and "*".
func WhereQuery(where string) string {
	if w := strings.TrimSpace(where); w == "" || w == "*" {
		return "SELECT * FROM devices"
	}
	return "SELECT * FROM devices WHERE " + where
}
