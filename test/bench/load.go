package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// echoMethod is the method every benchmark device answers by echoing the
// request payload.
const echoMethod = "echo"

// payloadOverhead is the size of {"id":"<12 digits>","pad":""}.
const payloadOverhead = len(`{"id":"`) + idDigits + len(`","pad":""}`)

// idDigits is the width of the per-call id.
const idDigits = 12

// padAlphabet fills payloads (JSON-safe, so every device's encoder writes it
// back byte for byte).
const padAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// payloadMaker builds payloads of exactly size bytes, each with a run-unique
// id, keys in sorted order and no spaces: the canonical form that Go's
// encoders, methodd's engine and JSON.stringify all write back unchanged.
type payloadMaker struct {
	ids *atomic.Uint64 // shared by the whole run
	pad string
}

func newPayloadMaker(ids *atomic.Uint64, size int) (payloadMaker, error) {
	n := size - payloadOverhead
	if n < 0 {
		return payloadMaker{}, fmt.Errorf("payload size %d is below the minimum %d", size, payloadOverhead)
	}
	pad := strings.Repeat(padAlphabet, n/len(padAlphabet)+1)[:n]
	return payloadMaker{ids: ids, pad: pad}, nil
}

// next appends a fresh payload to buf[:0].
func (m payloadMaker) next(buf []byte) []byte {
	buf = append(buf[:0], `{"id":"`...)
	buf = fmt.Appendf(buf, "%0*d", idDigits, m.ids.Add(1))
	buf = append(buf, `","pad":"`...)
	buf = append(buf, m.pad...)
	return append(buf, `"}`...)
}

// loadSpec is one burst of calls: inflight workers call until maxCalls calls
// were started or the deadline passed, whichever comes first.
type loadSpec struct {
	caller   caller
	device   string
	inflight int
	maker    payloadMaker
	maxCalls int
	deadline time.Time
}

// loadResult is what a burst of calls produced.
type loadResult struct {
	lat        []time.Duration // of replied, matching calls
	calls      int             // started
	lost       int             // no reply (an error instead)
	mismatched int             // a reply other than 200 with the request's payload
	firstErr   string
}

// runLoad runs spec and checks every reply. ctx bounds every call.
func runLoad(ctx context.Context, spec loadSpec) loadResult {
	var (
		claimed atomic.Int64
		mu      sync.Mutex
		total   loadResult
		wg      sync.WaitGroup
	)
	for range spec.inflight {
		wg.Go(func() {
			r := worker(ctx, spec, &claimed)
			mu.Lock()
			defer mu.Unlock()
			total.lat = append(total.lat, r.lat...)
			total.calls += r.calls
			total.lost += r.lost
			total.mismatched += r.mismatched
			if total.firstErr == "" {
				total.firstErr = r.firstErr
			}
		})
	}
	wg.Wait()
	return total
}

// worker calls one at a time until the burst's count or deadline is reached.
func worker(ctx context.Context, spec loadSpec, claimed *atomic.Int64) loadResult {
	var r loadResult
	var buf []byte
	for claimed.Add(1) <= int64(spec.maxCalls) && time.Now().Before(spec.deadline) && ctx.Err() == nil {
		buf = spec.maker.next(buf)
		r.calls++
		t0 := time.Now()
		status, got, err := spec.caller.call(ctx, spec.device, echoMethod, buf)
		d := time.Since(t0)
		switch {
		case err != nil:
			r.lost++
			r.note(fmt.Sprintf("call %s: %v", idOf(buf), err))
		case status != 200 || !sameJSON(got, buf):
			r.mismatched++
			r.note(fmt.Sprintf("call %s: status %d, payload %s", idOf(buf), status, clip(got, 200)))
		default:
			r.lat = append(r.lat, d)
		}
	}
	return r
}

func (r *loadResult) note(s string) {
	if r.firstErr == "" {
		r.firstErr = s
	}
}

// sameJSON reports whether got is the JSON value want: byte-equal (the
// normal case), else equal once both are decoded.
func sameJSON(got, want []byte) bool {
	if bytes.Equal(got, want) {
		return true
	}
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	return reflect.DeepEqual(g, w)
}

// idOf returns the id of a payload built by payloadMaker.
func idOf(p []byte) string {
	const at = len(`{"id":"`)
	if len(p) < at+idDigits {
		return "?"
	}
	return string(p[at : at+idDigits])
}

// clip shortens b for an error message.
func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + fmt.Sprintf("… (%d bytes)", len(b))
}
