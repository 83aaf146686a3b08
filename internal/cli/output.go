package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/methodd/methodd/invoke"
)

// printResult writes one answer: json is the hub's body byte for byte, pretty
// the same indented, payload only the device's payload. Each ends in a newline.
func printResult(w io.Writer, res invoke.Result, output string) error {
	var b []byte
	switch output {
	case "pretty":
		var buf bytes.Buffer
		if err := json.Indent(&buf, res.Raw, "", "  "); err != nil {
			return err
		}
		b = buf.Bytes()
	case "payload":
		b = res.Payload
	default:
		b = res.Raw
	}
	b = append(slices.Clip(b), '\n')
	_, err := w.Write(b)
	return err
}

// fanOut calls the method on every target, prints one line per outcome as
// it completes, then the summary. Exit: 0 when every device replied 2xx; 5
// when no device answered and some hub, auth or network error occurred (a
// wrong key or an unreachable hub fails every call alike); 1 otherwise.
func (c *invokeCmd) fanOut(ctx context.Context, client *invoke.Client, p invokePlan, parallel int) error {
	var sum invoke.Summary
	prog := newProgress(c.env.Stderr, len(p.targets), time.Now)
	start := time.Now()
	var werr error
	client.InvokeMany(ctx, p.targets, p.req, parallel, func(o invoke.Outcome) {
		sum.Add(o)
		prog.clear()
		if werr == nil {
			_, werr = c.env.Stdout.Write(append(o.Line(), '\n'))
		}
		prog.update(sum.Total())
	})
	prog.clear()
	elapsed := time.Since(start)
	rate := float64(sum.Total()) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(c.env.Stderr, "methodd: %s; %s, %.0f calls/s\n", sum.String(), elapsed.Round(time.Millisecond), rate)
	if werr != nil {
		return withExit(exitFailure, fmt.Errorf("invoke: write results: %w", werr))
	}
	switch {
	case sum.Counts[invoke.KindOK] == sum.Total():
		return nil
	case sum.Answered() == 0 && sum.Counts[invoke.KindError] > 0:
		return withExit(exitHubError, errSilent)
	default:
		return withExit(exitFailure, errSilent)
	}
}

// progress draws "[=====     ]  120/200" on a terminal, redrawn at most
// every 100 ms; on anything else it does nothing.
type progress struct {
	w     io.Writer // nil when not a terminal
	total int
	now   func() time.Time
	shown bool
	last  time.Time
}

func newProgress(w io.Writer, total int, now func() time.Time) *progress {
	p := &progress{total: total, now: now}
	if isTerminal(w) {
		p.w = w
	}
	return p
}

// update redraws the bar for done calls (throttled; always at the end).
func (p *progress) update(done int) {
	if p.w == nil || (done < p.total && p.now().Sub(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = p.now()
	const width = 30
	fill := width * done / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, p.total)
	p.shown = true
}

// clear erases the bar so that other output starts on a clean line.
func (p *progress) clear() {
	if p.w == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	p.shown = false
}

// printDocument writes a JSON document the hub returned (a twin, a job):
// json compacts it to one line, pretty indents it; both end in a newline.
// A document that is not JSON exits 5, a failed write 1.
func printDocument(w io.Writer, cmd, what string, doc []byte, output string) error {
	var b bytes.Buffer
	var err error
	if output == "pretty" {
		err = json.Indent(&b, doc, "", "  ")
	} else {
		err = json.Compact(&b, doc)
	}
	if err != nil { // the client hands over JSON objects only
		return withExit(exitHubError, fmt.Errorf("%s: the hub's %s document: %w", cmd, what, err))
	}
	b.WriteByte('\n')
	if _, err := w.Write(b.Bytes()); err != nil {
		return withExit(exitFailure, fmt.Errorf("%s: write the %s: %w", cmd, what, err))
	}
	return nil
}
