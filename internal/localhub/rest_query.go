package localhub

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Query headers (fleet reference §3.1).
const (
	headerMaxItemCount = "x-ms-max-item-count"
	headerContinuation = "x-ms-continuation"
	headerItemType     = "x-ms-item-type"
)

// routeQuery serves POST /devices/query (fleet reference §3.1): the body
// is {"query":"SELECT * FROM devices|devices.modules|devices.jobs [WHERE
// …]"}, x-ms-max-item-count the page size (1..1000, default
// DefaultQueryPageSize), x-ms-continuation the token of the page to
// continue after. The answer is 200 with a bare JSON array (full service
// twins, or per-device job records), x-ms-item-type twin or deviceJob,
// and x-ms-continuation only when more items match. Items come in client
// id order (job records: device id, job id), so that pages never repeat
// or skip an item that stays as it was.
//
// Authorization is as for twins (ServiceConnect). Errors are in body
// format B, as the twin routes': 400004 for a query with a syntax error
// (the message names its 0-based position), a missing query, a bad page
// size, or a token that is malformed or belongs to another query text;
// 400006 for a body that is not a JSON object; 413001 over 64 KB.
//
// Only POST is routed here: the other methods on /devices/query reach the
// registry's /devices/{device} routes, as they would on the real hub.
func (a *restAPI) routeQuery() {
	a.mux.HandleFunc(http.MethodPost+" /devices/query", a.query)
}

// query answers POST /devices/query.
func (a *restAPI) query(w http.ResponseWriter, r *http.Request) {
	start := a.h.opts.Now()
	sql, size, err := a.queryRequest(w, r)
	var page queryPage
	if err == nil {
		page, err = a.h.runQuery(sql, size, r.Header.Get(headerContinuation))
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	body := []byte{'['}
	for i, it := range page.items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, it...)
	}
	body = append(body, ']')
	hd := w.Header()
	hd.Set(headerItemType, page.itemType)
	if page.next != "" {
		hd.Set(headerContinuation, page.next)
	}
	a.writeJSON(w, http.StatusOK, "", body)
	a.h.log.LogAttrs(r.Context(), slog.LevelDebug, "query answered",
		slog.Int(logkey.Devices, len(page.items)),
		slog.Int64(logkey.DurationMs, a.h.opts.Now().Sub(start).Milliseconds()))
}

// queryRequest admits r and returns its query text and page size. The
// error is an *iothub.Error: 401002, 400004, 400006 or 413001.
func (a *restAPI) queryRequest(w http.ResponseWriter, r *http.Request) (string, int, error) {
	if err := a.admit(r, serviceConnect); err != nil {
		return "", 0, err
	}
	size, err := pageSize(r.Header.Get(headerMaxItemCount))
	if err != nil {
		return "", 0, err
	}
	body, err := readBody(w, r, maxQueryBytes, "The query request exceeds the maximum size of the request body.")
	if err != nil {
		return "", 0, err
	}
	var q struct {
		Query *string `json:"query"`
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &q) != nil {
		return "", 0, iothub.NewError(iothub.CodeIotHubFormatError, `The request body is not a valid JSON object {"query":"..."}.`)
	}
	if q.Query == nil || strings.TrimSpace(*q.Query) == "" {
		return "", 0, iothub.NewError(iothub.CodeArgumentInvalid, "The query is missing.")
	}
	return *q.Query, size, nil
}

// pageSize parses x-ms-max-item-count: "" is DefaultQueryPageSize; anything
// but an integer from 1 to MaxQueryPageSize is an *iothub.Error 400004.
func pageSize(v string) (int, error) {
	if v == "" {
		return DefaultQueryPageSize, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > MaxQueryPageSize {
		return 0, iothub.NewError(iothub.CodeArgumentInvalid, "The page size (x-ms-max-item-count) "+strconv.Quote(v)+" is not an integer from 1 to "+strconv.Itoa(MaxQueryPageSize)+".")
	}
	return n, nil
}
