package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// queryScenarios: twin queries from the SDK back end (query_service.js,
// azure-iothub Registry.createQuery + Query.nextAsTwin) to the local hub.
// Each uses tags and device IDs of its own, so they run in parallel.
var queryScenarios = []scenario{
	{"query_pages_follow_continuation", 60 * time.Second, queryPagesFollowContinuation},
	{"query_syntax_error", 60 * time.Second, querySyntaxError},
}

// TestSDKQuery runs every query scenario against one faithful local hub,
// one subtest per scenario, in parallel.
func TestSDKQuery(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	h := startHub(t, localhub.Faults{})
	for _, sc := range queryScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
}

// queryCmd is one stdin command of query_service.js.
type queryCmd struct {
	ID       string          `json:"id"`
	Op       string          `json:"op"` // tag or query
	Device   string          `json:"device,omitempty"`
	Tags     json.RawMessage `json:"tags,omitempty"`
	Query    string          `json:"query,omitempty"`
	PageSize int             `json:"pageSize,omitempty"`
}

// queryLine is one result line of query_service.js.
type queryLine struct {
	Event      string      `json:"event"`
	ID         string      `json:"id"`
	OK         bool        `json:"ok"`
	Error      string      `json:"error"` // the SDK error's constructor name
	Message    string      `json:"message"`
	HTTPStatus *int        `json:"httpStatus"`
	Pages      []queryPage `json:"pages"`
	Stopped    bool        `json:"stopped"` // the script's page bound was hit

	line string
}

func (l queryLine) String() string { return l.line }

// queryPage is what query_service.js saw of one nextAsTwin.
type queryPage struct {
	HTTPStatus     *int    `json:"httpStatus"`
	ItemType       *string `json:"itemType"`
	HasMoreResults bool    `json:"hasMoreResults"`
	Continuation   *string `json:"continuation"`
	Twins          []struct {
		Class    string         `json:"class"`
		DeviceID string         `json:"deviceId"`
		ETag     string         `json:"etag"`
		Tags     map[string]any `json:"tags"`
	} `json:"twins"`
}

// queryProc is a running query_service.js.
type queryProc struct {
	*node
	next atomic.Int64
}

// startQueryService runs query_service.js with the hub's service
// connection string and the redirect preload.
func (h *hubEnv) startQueryService(ctx context.Context, t *testing.T) (*queryProc, error) {
	env := []string{
		"SERVICE_CONNECTION_STRING=" + h.serviceCS,
		"NODE_EXTRA_CA_CERTS=" + h.info.CAFile,
		"METHODD_REDIRECT=" + h.redirect,
	}
	n, err := startNode(ctx, t, "query_service.js", env, "-r", "./redirect.js", "query_service.js")
	if err != nil {
		return nil, err
	}
	p, err := waitReady(ctx, n)
	if err != nil {
		return nil, err
	}
	return &queryProc{node: p.node}, nil
}

// do sends one command and returns its result line, whether ok or not.
func (p *queryProc) do(ctx context.Context, what string, c queryCmd) (queryLine, error) {
	c.ID = fmt.Sprintf("c%d", p.next.Add(1))
	b, err := json.Marshal(c)
	if err != nil {
		return queryLine{}, err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return queryLine{}, fmt.Errorf("%s: send %s: %w", p.name, what, err)
	}
	ctx, cancel := context.WithTimeout(ctx, twinOpTimeout)
	defer cancel()
	var l queryLine
	_, err = p.waitFor(ctx, "result of "+what, func(e event) bool {
		var got queryLine
		if json.Unmarshal([]byte(e.Raw), &got) != nil || got.Event != "result" || got.ID != c.ID {
			return false
		}
		l, l.line = got, e.Raw
		return true
	})
	return l, err
}

// ok is do for a command that must succeed.
func (p *queryProc) ok(ctx context.Context, what string, c queryCmd) (queryLine, error) {
	l, err := p.do(ctx, what, c)
	if err == nil && !l.OK {
		err = fmt.Errorf("%s failed: %s", what, l)
	}
	return l, err
}

// queryPagesFollowContinuation: N devices tagged through the SDK
// (Registry.updateTwin) among others that are not; createQuery with page
// size 1 then nextAsTwin until hasMoreResults is false gives exactly N
// pages of one Twin each, in order, hasMoreResults true on all but the
// last (the SDK reads that from x-ms-continuation alone); page size N gives
// one page with hasMoreResults false (a full last page carries no token).
func queryPagesFollowContinuation(ctx context.Context, t *testing.T, h *hubEnv) error {
	tagged := []string{"qp-1", "qp-2", "qp-3"}
	for _, id := range append(slices.Clone(tagged), "qp-other", "qp-untagged") {
		if _, err := h.device(id, ""); err != nil {
			return err
		}
	}
	s, err := h.startQueryService(ctx, t)
	if err != nil {
		return err
	}
	for _, id := range tagged {
		if _, err := s.ok(ctx, "Registry.updateTwin tags "+id, queryCmd{Op: "tag", Device: id, Tags: json.RawMessage(`{"fleet":"q"}`)}); err != nil {
			return err
		}
	}
	if _, err := s.ok(ctx, "Registry.updateTwin tags qp-other", queryCmd{Op: "tag", Device: "qp-other", Tags: json.RawMessage(`{"fleet":"other"}`)}); err != nil {
		return err
	}
	const sql = "SELECT * FROM devices WHERE tags.fleet = 'q'"
	var problems []string
	for _, size := range []int{1, len(tagged)} {
		l, err := s.ok(ctx, fmt.Sprintf("createQuery page size %d", size), queryCmd{Op: "query", Query: sql, PageSize: size})
		if err != nil {
			return err
		}
		problems = append(problems, checkPages(fmt.Sprintf("page size %d", size), l, tagged, size)...)
	}
	return joinProblems(problems)
}

// checkPages wants the query's pages to hold ids in order, size per page,
// each page a 200 of twins with hasMoreResults true on all but the last.
func checkPages(what string, l queryLine, ids []string, size int) []string {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, what+": "+fmt.Sprintf(format, args...))
	}
	wantPages := (len(ids) + size - 1) / size
	if l.Stopped {
		// The Node SDK loops for ever on a continuation header that never
		// goes away (fleet reference §3.1); the script stopped at 50.
		return append(problems, fmt.Sprintf("%s: the query never ended: hasMoreResults still true after 50 pages (want %d); first pages: %s",
			what, wantPages, truncate(l.line, 1500)))
	}
	if len(l.Pages) != wantPages {
		add("%d pages, want %d; %s", len(l.Pages), wantPages, l)
	}
	var got []string
	for i, p := range l.Pages {
		last := i == len(l.Pages)-1
		if p.HasMoreResults == last {
			add("page %d of %d: hasMoreResults %v (continuation %s)", i+1, len(l.Pages), p.HasMoreResults, strp(p.Continuation))
		}
		if p.HTTPStatus == nil || *p.HTTPStatus != 200 || p.ItemType == nil || *p.ItemType != "twin" {
			add("page %d: HTTP status %s, x-ms-item-type %s; want 200 and twin", i+1, intp(p.HTTPStatus), strp(p.ItemType))
		}
		if len(p.Twins) != size && !last {
			add("page %d holds %d twins, want %d", i+1, len(p.Twins), size)
		}
		for _, tw := range p.Twins {
			if tw.Class != "Twin" || tw.ETag == "" || tw.Tags["fleet"] != "q" {
				add("page %d: item %+v, want a Twin with an etag and tags.fleet q", i+1, tw)
			}
			got = append(got, tw.DeviceID)
		}
	}
	if !slices.Equal(got, ids) {
		add("devices %q across the pages, want %q", got, ids)
	}
	return problems
}

// querySyntaxError: a query the hub cannot parse fails nextAsTwin with the
// SDK's ArgumentError (HTTP 400), the hub's message naming the position.
func querySyntaxError(ctx context.Context, t *testing.T, h *hubEnv) error {
	s, err := h.startQueryService(ctx, t)
	if err != nil {
		return err
	}
	l, err := s.do(ctx, "createQuery with a syntax error", queryCmd{Op: "query", Query: "SELECT * FROM devices WHERE tags.fleet = ", PageSize: 1})
	if err != nil {
		return err
	}
	t.Logf("the SDK's error: %s, HTTP %s, message %q", l.Error, intp(l.HTTPStatus), l.Message)
	if l.OK || l.Error != "ArgumentError" || l.HTTPStatus == nil || *l.HTTPStatus != 400 {
		return fmt.Errorf("want ArgumentError with HTTP 400: %s", l)
	}
	if !strings.Contains(l.Message, "position 41") {
		return fmt.Errorf("the SDK's error message %q does not name position 41: %s", l.Message, l)
	}
	return nil
}

// truncate shortens s to n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
