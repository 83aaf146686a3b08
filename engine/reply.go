package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MaxReplyBytes is the largest reply payload IoT Hub accepts (128 KB).
const MaxReplyBytes = 128 * 1024

// maxErrorText bounds the text of an error reply, so that it always fits.
const maxErrorText = 4 << 10

// Request is one method call. Payload is the raw JSON as received from the
// hub; empty means JSON null.
type Request struct {
	Method    string
	RequestID string
	DeviceID  string
	ModuleID  string
	Payload   []byte
}

// Reply is the answer to one call: an HTTP-like Status and a Payload that is
// always valid JSON of at most MaxReplyBytes bytes.
type Reply struct {
	Status  int
	Payload []byte

	// After, when set, is what the call still has to do once this reply
	// has reached the hub: the caller (the device session) runs it after
	// the reply is published, and never when the reply could not be
	// delivered. detach methods start their command there.
	After func()

	// lease, when set, is the pooled buffer Payload lives in; gen is the
	// lease's generation when this reply got it (see Release).
	lease *replyBuffer
	gen   uint64
}

// Release hands the memory of Payload back to the engine for later
// replies. Call it once nothing will read Payload again (for a device, once
// the reply is written); after it, Payload may change under the caller.
// Not calling it is always safe: the garbage collector takes the buffer.
// Calling it again, or on a copy of the Reply, does nothing.
func (r Reply) Release() {
	if r.lease != nil && r.lease.gen.CompareAndSwap(r.gen, r.gen+1) {
		r.lease.from.put(r.lease)
	}
}

// errorBody is the payload of every error reply.
type errorBody struct {
	Error string `json:"error"`
	Param string `json:"param,omitempty"`
}

// errorReply builds {"error": msg} with the given status.
func errorReply(status int, msg string) Reply {
	return bodyReply(status, errorBody{Error: msg})
}

// bodyReply marshals an errorBody; it cannot fail and always fits because
// the text is bounded.
func bodyReply(status int, body errorBody) Reply {
	body.Error = boundText(body.Error)
	b, _ := marshal(body)
	return Reply{Status: status, Payload: b}
}

// boundText cuts an error text to maxErrorText bytes.
func boundText(s string) string {
	if len(s) > maxErrorText {
		return truncateUTF8(s, maxErrorText) + "…"
	}
	return s
}

// unknownMethodReply is the 404 of a call to a method the Set does not
// have: {"error": ..., "methods": [...]} with every method's name, the list
// present even when empty, so that a caller can tell what it may call. A
// list too long for one reply keeps the names that fit and says
// "truncated": true.
func unknownMethodReply(method string, names []string) Reply {
	body := struct {
		Error     string   `json:"error"`
		Methods   []string `json:"methods"`
		Truncated bool     `json:"truncated,omitempty"`
	}{Error: boundText(fmt.Sprintf("unknown method %q", method)), Methods: names}
	if body.Methods == nil {
		body.Methods = []string{}
	}
	b, _ := marshal(body)
	for len(b) > MaxReplyBytes {
		body.Methods, body.Truncated = body.Methods[:len(body.Methods)*9/10], true
		b, _ = marshal(body)
	}
	return Reply{Status: 404, Payload: b}
}

// replyBuffers recycles the buffers replies are encoded in. A reply that
// its caller releases (Reply.Release) costs no allocation at all; one that
// is not released costs one allocation of the size it grew to. The zero
// value is ready to use. Measured against a fresh buffer per reply (issue
// 13): BenchmarkExprEcho (8 KB) 6.6 against 8.2 µs and 8.7 against 16.8 KB
// per call; in the daemon benchmark, the two interleaved cell by cell
// twice, 15–16 % less daemon CPU per call at 128 in flight with 8 KB.
type replyBuffers struct{ pool sync.Pool }

// replyBuffer is one pooled buffer. gen counts its leases: Release only
// returns it when the generation it was leased at is still current, so a
// stale copy of a Reply cannot return a buffer that a later reply holds.
type replyBuffer struct {
	b    []byte
	from *replyBuffers
	gen  atomic.Uint64
}

// maxPooledBuffer bounds what goes back to the pool: a reply that failed
// for being too large must not pin its buffer.
const maxPooledBuffer = 2 * MaxReplyBytes

func (p *replyBuffers) get() *replyBuffer {
	if rb, ok := p.pool.Get().(*replyBuffer); ok {
		return rb
	}
	return &replyBuffer{from: p}
}

func (p *replyBuffers) put(rb *replyBuffer) {
	if cap(rb.b) <= maxPooledBuffer {
		rb.b = rb.b[:0]
		p.pool.Put(rb)
	}
}

// valueReply encodes v as the reply payload, in a leased buffer. A value
// that cannot be encoded or does not fit becomes a 500 error reply.
func (p *replyBuffers) valueReply(status int, v any, what string) Reply {
	if raw, ok := v.(json.RawMessage); ok {
		return Reply{Status: status, Payload: raw}
	}
	rb := p.get()
	b, err := appendJSON(rb.b[:0], v, 0)
	rb.b = b
	switch {
	case err != nil:
		p.put(rb)
		return errorReply(500, fmt.Sprintf("%s: cannot encode as JSON: %v", what, err))
	case len(b) > MaxReplyBytes:
		p.put(rb)
		return errorReply(500, fmt.Sprintf("%s: reply is %d bytes, over the %d-byte limit", what, len(b), MaxReplyBytes))
	}
	return Reply{Status: status, Payload: b, lease: rb, gen: rb.gen.Load()}
}

// marshal is json.Marshal without HTML escaping, so that "<" stays
// readable in replies.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// commandPayload is the default reply payload of a command: its stdout when
// that is complete, valid JSON that fits, else
// {"exitCode":N,"stdout":"...","stderr":"..."} with the output cut so that
// the whole fits ("truncated":true when anything was cut; "escapedKilled":N
// and "escapedAlive":K when processes that left the process group were still
// running after the command exited: N killed, K not).
func commandPayload(res *procResult) json.RawMessage {
	if out := bytes.TrimSpace(res.stdout); !res.truncated && len(out) > 0 && len(out) <= MaxReplyBytes && json.Valid(out) {
		return json.RawMessage(out)
	}
	return append(appendResult([]byte{'{'}, res), '}')
}

// appendResult appends to b (an open JSON object, its members so far
// included) the members "exitCode", "stdout" and "stderr" of res, then
// "truncated":true when output was cut, and "escapedKilled" /
// "escapedAlive" when processes that left the process group were killed
// or survived; the output is cut so that the closed object fits a reply.
func appendResult(b []byte, res *procResult) []byte {
	const overhead = len(`"exitCode":-2147483648,"stdout":"","stderr":"","truncated":true,"escapedKilled":2147483647,"escapedAlive":2147483647}`)
	stdout, stderr, cut := fitPair(res.stdout, res.stderr, MaxReplyBytes-overhead-len(b))
	b = append(b, `"exitCode":`...)
	b = strconv.AppendInt(b, int64(res.exitCode), 10)
	b = append(b, `,"stdout":`...)
	b = appendJSONString(b, string(stdout))
	b = append(b, `,"stderr":`...)
	b = appendJSONString(b, string(stderr))
	if cut || res.truncated {
		b = append(b, `,"truncated":true`...)
	}
	if res.escaped.killed > 0 {
		b = append(b, `,"escapedKilled":`...)
		b = strconv.AppendInt(b, int64(res.escaped.killed), 10)
	}
	if res.escaped.survived > 0 {
		b = append(b, `,"escapedAlive":`...)
		b = strconv.AppendInt(b, int64(res.escaped.survived), 10)
	}
	return b
}

// fitPair cuts a and b so that their JSON-encoded lengths together stay
// within budget. b (stderr) keeps at most a quarter of the budget unless a
// needs less. It reports whether anything was cut.
func fitPair(a, b []byte, budget int) ([]byte, []byte, bool) {
	la, lb := jsonStringLen(a), jsonStringLen(b)
	if la+lb <= budget {
		return a, b, false
	}
	bBudget := min(lb, budget/4)
	aBudget := budget - bBudget
	if la < aBudget {
		aBudget, bBudget = la, budget-la
	}
	return cutEncoded(a, aBudget), cutEncoded(b, bBudget), true
}

// cutEncoded returns the longest prefix of s (whole runes) whose encoded
// JSON string length is at most n.
func cutEncoded(s []byte, n int) []byte {
	size := 2
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRune(s[i:])
		size += runeJSONLen(r, w)
		if size > n {
			return s[:i]
		}
		i += w
	}
	return s
}

// jsonStringLen is len(appendJSONString(nil, s)).
func jsonStringLen(s []byte) int {
	n := 2
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRune(s[i:])
		n += runeJSONLen(r, w)
		i += w
	}
	return n
}

// runeJSONLen is the encoded length of one decoded rune of width w.
func runeJSONLen(r rune, w int) int {
	switch {
	case r == utf8.RuneError && w == 1:
		return 6 // \ufffd
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20:
		return 6
	}
	return w
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] needs no escaping and is copied in one append
	for i := 0; i < len(s); {
		if n := plainPrefix(s[i:]); n > 0 {
			i += n
			continue
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, w := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || w != 1 {
				i += w // valid UTF-8 is copied as is
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch {
		case c >= utf8.RuneSelf: // a byte that is not valid UTF-8
			b = append(b, `\ufffd`...)
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
