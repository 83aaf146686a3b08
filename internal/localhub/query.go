package localhub

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/methodd/methodd/internal/twinquery"
	"github.com/methodd/methodd/iothub"
)

// Paging of POST /devices/query (fleet reference §3.1).
const (
	// DefaultQueryPageSize is the page size when the request has no
	// x-ms-max-item-count header. The real hub's default is not documented
	// (§9); 100 is the size the Node SDK's own samples ask for.
	DefaultQueryPageSize = 100
	// MaxQueryPageSize is the largest x-ms-max-item-count accepted.
	MaxQueryPageSize = 1000
)

// Item types of a query answer (x-ms-item-type).
const (
	itemTypeTwin      = "twin"
	itemTypeDeviceJob = "deviceJob"
)

// queryPage is one page of a query's answer.
type queryPage struct {
	itemType string
	items    []json.RawMessage
	next     string // continuation token; "" on the last page
}

// queryItem is a matching document with the key it is ordered and paged
// by (a client id; for job records device id and job id).
type queryItem struct {
	key string
	doc json.RawMessage
}

// runQuery answers one page of sql: up to size items after the one the
// continuation token cont ("" for the first page) names, in key order, and
// a token for the next page only when another item matches. The error is
// an *iothub.Error 400004 for a query the language refuses (the message
// names the position) or a token that is malformed or belongs to another
// query text.
func (h *Hub) runQuery(sql string, size int, cont string) (queryPage, error) {
	q, err := twinquery.Parse(sql)
	if err != nil {
		return queryPage{}, querySyntaxError(err)
	}
	after, err := decodeContinuation(cont, sql)
	if err != nil {
		return queryPage{}, err
	}
	var page queryPage
	var items []queryItem
	switch q.From {
	case twinquery.Devices, twinquery.Modules:
		page.itemType = itemTypeTwin
		items = h.matchTwins(q.From == twinquery.Modules, q.Where(), after, size+1)
	case twinquery.Jobs:
		page.itemType = itemTypeDeviceJob
		if items, err = h.deviceJobRecords(q.Where(), after, size+1); err != nil {
			return queryPage{}, err
		}
	default:
		return queryPage{}, iothub.NewError(iothub.CodeArgumentInvalid, fmt.Sprintf("The query source %d is not supported.", q.From))
	}
	if len(items) > size {
		items = items[:size]
		page.next = encodeContinuation(sql, items[size-1].key)
	}
	page.items = make([]json.RawMessage, len(items))
	for i, it := range items {
		page.items[i] = it.doc
	}
	return page, nil
}

// querySyntaxError is the 400004 answer to a query Parse refused.
func querySyntaxError(err error) error {
	if se, ok := errors.AsType[*twinquery.SyntaxError](err); ok {
		return iothub.NewError(iothub.CodeArgumentInvalid, fmt.Sprintf("Syntax error at position %d: %s", se.Pos, se.Msg))
	}
	return iothub.NewError(iothub.CodeArgumentInvalid, "Invalid query: "+err.Error())
}

// matchTwins returns, in client-id order, the first limit twins after the
// client id after whose documents c matches: module twins when modules,
// else device twins. An identity deleted meanwhile is skipped.
func (h *Hub) matchTwins(modules bool, c *twinquery.Condition, after string, limit int) []queryItem {
	var out []queryItem
	for _, id := range h.twins.clientIDs() {
		if id <= after && after != "" {
			continue
		}
		if _, module := iothub.SplitClientID(id); (module != "") != modules {
			continue
		}
		doc, err := h.twinDocument(id)
		if err != nil {
			continue // deleted since the ids were listed
		}
		if m, ok := matchDocument(doc); ok && c.Match(m) {
			if out = append(out, queryItem{key: id, doc: doc}); len(out) == limit {
				break
			}
		}
	}
	return out
}

// matchDocument decodes a JSON object for matching, numbers as
// json.Number.
func matchDocument(doc []byte) (map[string]any, bool) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var m map[string]any
	return m, d.Decode(&m) == nil
}

// clientIDs returns the client ids of every twin, sorted.
func (s *twinStore) clientIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

// A continuation token is base64url of "<query hash>:<key of the last item
// returned>"; the hash (16 hex digits of the SHA-256 of the query text)
// ties the token to its query.
func encodeContinuation(sql, lastKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(queryHash(sql) + ":" + lastKey))
}

// decodeContinuation returns the key a token names; "" for no token. A
// malformed token or one of another query is an *iothub.Error 400004.
func decodeContinuation(tok, sql string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	hash, key, ok := strings.Cut(string(b), ":")
	if err != nil || !ok || key == "" {
		return "", iothub.NewError(iothub.CodeArgumentInvalid, "The continuation token is malformed.")
	}
	if hash != queryHash(sql) {
		return "", iothub.NewError(iothub.CodeArgumentInvalid, "The continuation token belongs to another query.")
	}
	return key, nil
}

// queryHash is 16 hex digits of the SHA-256 of sql.
func queryHash(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return hex.EncodeToString(sum[:8])
}
