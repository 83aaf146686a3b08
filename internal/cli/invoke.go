package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

const invokeUsage = `usage: methodd invoke [flags] DEVICE[/MODULE] METHOD [PAYLOAD]
       methodd invoke [flags] --devices-file FILE|- METHOD [PAYLOAD]
       methodd invoke [flags] --where CONDITION METHOD [PAYLOAD]

Calls a direct method through the IoT Hub service REST API and prints the
hub's answer. PAYLOAD is JSON text, @FILE, or - (standard input); omitted, it
is null. Any JSON value is allowed. Flags go before the arguments.

The hub is --connection-string-file (or --connection-string, which other
local users can read in ps), else $IOTHUB_CONNECTION_STRING, else
$IOTHUB_SERVICE_CONNECTION_STRING; --local instead reads hub.json of the local
hub (methodd hub, methodd run --local) from --hub-dir.

Output (-o): json (default) prints the hub's body {"status":N,"payload":...}
byte for byte; pretty indents it; payload prints only the device's payload.

With --devices-file (one DEVICE or DEVICE/MODULE per line; blank lines and
#comments ignored) the method is called on every device, --parallel at a time,
and one JSON line per device is printed as calls complete:
  {"device":"d","status":200,"payload":...}
  {"device":"d","error":{"code":404103,"message":"...","trackingId":"..."}}
(code is 0 for network errors). A summary goes to stderr, and a progress
line too when stderr is a terminal. Throttled (429) and unavailable (503)
answers are retried with back-off; nothing else is retried.

With --where the devices are those whose twins satisfy CONDITION, the WHERE
part of a query (see methodd query -h; '*' is every device), asked of the hub
once before the first call; then it is the --devices-file fan-out, with the
same output and exit status. A condition the hub refuses (400, with the
position in the query it names) and a condition no device satisfies are
usage errors, as an empty devices file is. DEVICE, --devices-file and
--where exclude each other.

Exit status: 0 the device replied 2xx (fan-out: every device did); 1 a device
replied another status (fan-out: any call did not succeed); 2 usage or input
error; 3 device or module not found or not online (404001, 404010, 404103);
4 the device did not answer in time (504101); 5 any other hub, auth or network
error (fan-out: when no device answered at all and such an error occurred).

examples:
  methodd invoke --local dev-device ping
  methodd invoke dev-device reboot '{"delay": 5}'
  methodd invoke --timeout 60s gateway/edgeModule getLogs @request.json
  echo '[1,2,3]' | methodd invoke -o payload dev-device sum -
  methodd invoke --devices-file fleet.txt --parallel 64 ping > results.jsonl
  methodd invoke --where "tags.site = 'berlin' AND properties.reported.fw < '2.0'" update @fw.json`

// invokeCmd implements `methodd invoke`.
type invokeCmd struct{ env Env }

// invokeFlags are the parsed flags of `methodd invoke`.
type invokeFlags struct {
	hub            serviceFlags
	timeout        time.Duration
	connectTimeout time.Duration
	output         string
	devicesFile    string
	where          string // a query condition; "" when not given
	parallel       int
}

// Run implements `methodd invoke`: every argument is checked before the
// first request, then one call or a fan-out is made.
func (c *invokeCmd) Run(ctx context.Context, args []string) error {
	var f invokeFlags
	fs := newFlagSet("invoke", invokeUsage, c.env.Stderr)
	addHubFlags(fs, &f.hub, c.env.Stderr)
	durationVar(fs, &f.timeout, "timeout", 30*time.Second, "how long the hub waits for the device's reply (5s..300s, whole seconds)")
	durationVar(fs, &f.connectTimeout, "connect-timeout", 0, "how long the hub waits for an offline device to connect (0s..300s, whole seconds)")
	fs.StringVar(&f.output, "o", "json", "output: json, pretty or payload")
	fs.StringVar(&f.devicesFile, "devices-file", "", "call every device listed in FILE (- for standard input) instead of DEVICE")
	fs.Func("where", "call every device whose twin satisfies this query `CONDITION` (e.g. \"tags.site = 'a'\"; '*': all) instead of DEVICE", func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("empty condition ('*' selects every device)")
		}
		f.where = v
		return nil
	})
	fs.IntVar(&f.parallel, "parallel", 16, "calls in flight at once with --devices-file or --where (1..1024)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := c.plan(f, fs.Args())
	if err != nil {
		return err
	}
	client, err := c.client(f)
	if err != nil {
		return err
	}
	defer client.Close()
	if f.where != "" {
		if p.targets, err = whereTargets(ctx, client, f.where); err != nil {
			return err
		}
	}
	if p.targets != nil {
		return c.fanOut(ctx, client, p, f.parallel)
	}
	return c.single(ctx, client, p, f.output)
}

// invokePlan is everything a run calls, validated.
type invokePlan struct {
	target  invoke.Target   // single call
	targets []invoke.Target // fan-out; nil for a single call
	req     iothub.MethodRequest
}

// plan validates flags and arguments and reads the payload and the devices
// file: every input error is found here, before any network traffic.
func (c *invokeCmd) plan(f invokeFlags, args []string) (invokePlan, error) {
	var p invokePlan
	if err := checkInvokeFlags(f); err != nil {
		return p, err
	}
	switch {
	case f.devicesFile != "" && f.where != "":
		return p, usageError("invoke: --devices-file and --where exclude each other")
	case f.where != "":
		if len(args) < 1 || len(args) > 2 {
			return p, usageError("invoke: with --where want METHOD [PAYLOAD], got %d arguments (no DEVICE: the query chooses the devices)", len(args))
		}
	case f.devicesFile == "":
		if len(args) < 2 || len(args) > 3 {
			return p, usageError("invoke: want DEVICE[/MODULE] METHOD [PAYLOAD], got %d arguments (flags go first; -h for help)", len(args))
		}
		t, err := invoke.ParseTarget(args[0])
		if err != nil {
			return p, usageError("invoke: %v", err)
		}
		p.target, args = t, args[1:]
	case len(args) < 1 || len(args) > 2:
		return p, usageError("invoke: with --devices-file want METHOD [PAYLOAD], got %d arguments", len(args))
	}
	if !iothub.ValidMethodName(args[0]) {
		return p, usageError("invoke: %q is not a valid method name (1..128 printable ASCII characters, none of / + # ? $ space and the reserved punctuation)", args[0])
	}
	p.req = iothub.MethodRequest{MethodName: args[0], ResponseTimeoutInSeconds: int(f.timeout / time.Second), ConnectTimeoutInSeconds: int(f.connectTimeout / time.Second)}
	if len(args) == 2 {
		if args[1] == "-" && f.devicesFile == "-" {
			return p, usageError("invoke: the payload cannot come from standard input when the devices do")
		}
		payload, err := readPayload("invoke", args[1], c.env.Stdin)
		if err != nil {
			return p, err
		}
		p.req.Payload = payload
	}
	if f.devicesFile != "" {
		targets, err := readDevicesFile(f.devicesFile, c.env.Stdin)
		if err != nil {
			return p, err
		}
		p.targets = targets
	}
	return p, nil
}

// checkInvokeFlags range-checks the flags that need no I/O.
func checkInvokeFlags(f invokeFlags) error {
	switch {
	case f.timeout%time.Second != 0 || f.timeout < iothub.MinResponseTimeout*time.Second || f.timeout > iothub.MaxResponseTimeout*time.Second:
		return usageError("invoke: --timeout %v: want whole seconds from 5s to 300s", f.timeout)
	case f.connectTimeout%time.Second != 0 || f.connectTimeout < 0 || f.connectTimeout > iothub.MaxConnectTimeout*time.Second:
		return usageError("invoke: --connect-timeout %v: want whole seconds from 0s to 300s", f.connectTimeout)
	case f.output != "json" && f.output != "pretty" && f.output != "payload":
		return usageError("invoke: -o %q: want json, pretty or payload", f.output)
	case f.devicesFile != "" && f.output != "json":
		return usageError("invoke: -o %s needs a single DEVICE; --devices-file prints JSON lines", f.output)
	case f.where != "" && f.output != "json":
		return usageError("invoke: -o %s needs a single DEVICE; --where prints JSON lines", f.output)
	case f.parallel < 1 || f.parallel > 1024:
		return usageError("invoke: --parallel %d: want 1 to 1024", f.parallel)
	}
	return f.hub.check("invoke")
}

// client builds the REST client for the hub the flags and environment name.
func (c *invokeCmd) client(f invokeFlags) (*invoke.Client, error) {
	hub, err := resolveHub("invoke", f.hub, c.env.Getenv)
	if err != nil {
		return nil, err
	}
	roots, err := trustedRoots("invoke", hub, f.hub.caFile)
	if err != nil {
		return nil, err
	}
	cl, err := invoke.NewClient(hub.cs, invoke.ClientOptions{
		RootCAs:   roots,
		Addr:      hub.addr,
		UserAgent: productToken(),
		MaxConns:  f.parallel,
	})
	if err != nil {
		return nil, usageError("invoke: connection string (%s): %v", hub.source, err)
	}
	return cl, nil
}

// single makes one call and prints its answer in the chosen format.
func (c *invokeCmd) single(ctx context.Context, client *invoke.Client, p invokePlan, output string) error {
	res, err := client.Invoke(ctx, p.target, p.req)
	kind := invoke.KindOf(res, err)
	if err != nil {
		return withExit(exitCodeOfKind(kind), err)
	}
	if err := printResult(c.env.Stdout, res, output); err != nil {
		return withExit(exitHubError, fmt.Errorf("invoke %s %s: %w", p.target, p.req.MethodName, err))
	}
	if kind != invoke.KindOK {
		return withExit(exitFailure, fmt.Errorf("invoke %s %s: the device replied status %d", p.target, p.req.MethodName, res.Status))
	}
	return nil
}

// exitCodeOfKind maps an outcome kind to invoke's exit code.
func exitCodeOfKind(k invoke.Kind) int {
	switch k {
	case invoke.KindOK:
		return exitOK
	case invoke.KindDeviceError:
		return exitFailure
	case invoke.KindUnreachable:
		return exitUnreachable
	case invoke.KindTimeout:
		return exitTimeout
	default:
		return exitHubError
	}
}

// readDevicesFile reads the targets of a fan-out from a file or, for "-",
// standard input. An unreadable or empty list is a usage error.
func readDevicesFile(name string, stdin io.Reader) ([]invoke.Target, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError("invoke: --devices-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	targets, err := invoke.ReadTargets(r)
	if err != nil {
		return nil, usageError("invoke: --devices-file %s: %v", name, err)
	}
	if len(targets) == 0 {
		return nil, usageError("invoke: --devices-file %s lists no devices", name)
	}
	return targets, nil
}

// whereTargets returns the devices whose twins satisfy the query condition
// where ("*": every device), asked of the hub. A condition the hub refuses
// (400) and one that no device satisfies are usage errors, as a bad or
// empty devices file is; any other failure is a hub error (exit 5).
func whereTargets(ctx context.Context, client *invoke.Client, where string) ([]invoke.Target, error) {
	ids, err := client.QueryDeviceIDs(ctx, where)
	var he *iothub.Error
	switch {
	case errors.As(err, &he) && he.HTTPStatus == http.StatusBadRequest:
		return nil, usageError("invoke: --where: the hub refused the query %q: %v", invoke.WhereQuery(where), err)
	case err != nil:
		return nil, withExit(exitHubError, fmt.Errorf("invoke: --where: %w", err))
	case len(ids) == 0:
		return nil, usageError("invoke: --where %s matches no devices", where)
	}
	targets := make([]invoke.Target, len(ids))
	for i, id := range ids {
		targets[i] = invoke.Target{Device: id}
	}
	return targets, nil
}
