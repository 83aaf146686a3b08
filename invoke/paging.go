package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Paging headers of the query APIs (fleet reference §3.1).
const (
	headerMaxItemCount = "x-ms-max-item-count"
	headerContinuation = "x-ms-continuation"
)

// paginate requests o page by page, asking for pageSize items
// (x-ms-max-item-count; 0 asks for none and the hub picks) and following
// x-ms-continuation until a page comes without one, and calls each with
// every item, the hub's bytes of one JSON value. A page that is not a JSON
// array, or a continuation token that does not change, wraps malformed. An
// error from each stops and is returned as it is. Each page is retried as
// withRetries does (429 and 503 only).
func (c *Client) paginate(ctx context.Context, o outgoing, pageSize int, malformed error, each func(json.RawMessage) error) error {
	token := ""
	for {
		o.header = map[string]string{}
		if pageSize > 0 {
			o.header[headerMaxItemCount] = strconv.Itoa(pageSize)
		}
		if token != "" {
			o.header[headerContinuation] = token
		}
		var raw []byte
		var next string
		_, err := c.withRetries(ctx, func() (time.Duration, error) {
			r, hdr, retryAfter, err := c.exchange(ctx, o)
			raw = r
			if hdr != nil {
				next = hdr.Get(headerContinuation)
			}
			return retryAfter, err
		})
		if err != nil {
			return err
		}
		var items []json.RawMessage
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '[' || json.Unmarshal(t, &items) != nil {
			return fmt.Errorf("%w: a page is not a JSON array", malformed)
		}
		for _, it := range items {
			if err := each(it); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		if next == token {
			return fmt.Errorf("%w: the continuation token did not change", malformed)
		}
		token = next
	}
}
