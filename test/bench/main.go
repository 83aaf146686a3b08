// Command bench measures methodd against the physical floor and against the
// official Node SDK device, side by side in one run on a local hub over
// loopback (issue 8), and writes BENCHMARKS.md.
//
//	go run ./test/bench            # the full matrix, writes BENCHMARKS.md
//	go run ./test/bench --quick    # seconds, tiny counts (CI); writes a temp file
//
// It exits 1 when any reply was lost or did not echo its request, or when a
// device failed; 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: go run ./test/bench [--quick] [--out FILE] [--duration D] [--skip-node]
                           [--max-calls N] [--reloads N] [--starts N] [--node-modules DIR]
                           [--devices a,c] [--paths mqtt] [--inflight 16] [--sizes 8192] [--symbols]

Builds methodd and the raw paho device, starts a local hub in-process, and
measures four devices one at a time — (a) methodd run with an expression
echo, (b) methodd run with run: [/bin/true], (c) a raw paho echo device,
(d) the Node SDK echo device — over REST and over the hub's MQTT inline
client, at 1/16/128 calls in flight with 100 B/8 KB/100 KB payloads; plus a
plain os/exec loop of /bin/true, reload latency and start-up time. Every reply
is checked against its request. Writes the report to --out.

examples:
  go run ./test/bench
  go run ./test/bench --quick --out /tmp/bench.md
  go run ./test/bench --duration 10s --skip-node
  go run ./test/bench --devices a,c --paths mqtt --inflight 16 --sizes 8192 --symbols --duration 30s`

// options are the parsed flags.
type options struct {
	quick       bool
	out         string
	duration    time.Duration // measured time per cell
	skipNode    bool
	only        string // comma-separated device keys, "" = all
	maxCalls    int    // per cell (measured part)
	reloads     int
	starts      int
	nodeModules string
	symbols     bool
	// pathList, inflightList and sizeList restrict the matrix ("" = all).
	pathList, inflightList, sizeList string
	inflights                        []int
	sizes                            []int
	paths                            []string
	command                          string // as typed, for the report
}

// errUsage marks flag errors (exit 2).
var errUsage = errors.New("usage")

func parseOptions(args []string, stderr io.Writer, root string) (options, error) {
	o := options{command: strings.Join(append([]string{"go run ./test/bench"}, args...), " ")}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	fs.BoolVar(&o.quick, "quick", false, "seconds and tiny counts, a subset of the matrix (CI)")
	fs.StringVar(&o.out, "out", "", "report file (default BENCHMARKS.md at the module root; with --quick a temporary file)")
	fs.DurationVar(&o.duration, "duration", 0, "measured time per cell (default 5s, --quick 300ms)")
	fs.BoolVar(&o.skipNode, "skip-node", false, "leave out device (d), the Node SDK device")
	fs.StringVar(&o.only, "devices", "", "measure only these devices, e.g. a,c (default all; for investigating one cell)")
	fs.IntVar(&o.maxCalls, "max-calls", 0, "at most this many measured calls per cell (default 200000, --quick 24)")
	fs.IntVar(&o.reloads, "reloads", 0, "reloads measured (default 50, --quick 3)")
	fs.IntVar(&o.starts, "starts", 0, "daemon start-ups measured (default 20, --quick 2)")
	fs.StringVar(&o.pathList, "paths", "", "only these call paths, e.g. mqtt (default mqtt,rest; for investigating one cell)")
	fs.StringVar(&o.inflightList, "inflight", "", "only these in-flight counts, e.g. 16 (default 1,16,128)")
	fs.StringVar(&o.sizeList, "sizes", "", "only these payload sizes in bytes, e.g. 8192 (default 100,8192,102400)")
	fs.BoolVar(&o.symbols, "symbols", false, "build the binaries unstripped, so that perf record -p PID can name functions (RSS then differs from shipping)")
	fs.StringVar(&o.nodeModules, "node-modules", filepath.Join(root, "test", "conformance", "node_modules"), "node_modules holding azure-iot-device-mqtt (npm ci --prefix test/conformance)")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	o.applyDefaults()
	if err := o.restrictMatrix(); err != nil {
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if o.only != "" && !strings.Contains(o.only, "d") {
		o.skipNode = true
	}
	if o.duration <= 0 || o.duration > 10*time.Minute || o.maxCalls < 1 || o.reloads < 0 || o.starts < 1 {
		return o, fmt.Errorf("%w: --duration must be in (0, 10m], --max-calls and --starts ≥ 1, --reloads ≥ 0", errUsage)
	}
	return o, nil
}

// modeDefaults are the per-mode values of flags left at zero.
type modeDefaults struct {
	duration                  time.Duration
	maxCalls, reloads, starts int
}

// applyDefaults fills what the flags left at zero, per mode, and the matrix.
func (o *options) applyDefaults() {
	d := modeDefaults{duration: 5 * time.Second, maxCalls: 200_000, reloads: 50, starts: 20}
	o.inflights, o.sizes = []int{1, 16, 128}, []int{100, 8 << 10, 100 << 10}
	if o.quick {
		d = modeDefaults{duration: 300 * time.Millisecond, maxCalls: 24, reloads: 3, starts: 2}
		o.inflights, o.sizes = []int{1, 16}, []int{100, 8 << 10}
	}
	o.paths = []string{pathMQTT, pathREST}
	if o.duration == 0 {
		o.duration = d.duration
	}
	if o.maxCalls == 0 {
		o.maxCalls = d.maxCalls
	}
	if o.reloads == 0 {
		o.reloads = d.reloads
	}
	if o.starts == 0 {
		o.starts = d.starts
	}
}

// run is the whole command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	root, err := findRoot(wd)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	o, err := parseOptions(args, stderr, root)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	res, err := runHarness(ctx, o, root, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	out, err := writeReport(o, root, res)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "report: %s\n", out)
	if bad := res.failures(); len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(stderr, "bench: FAIL:", b)
		}
		return 1
	}
	return 0
}
