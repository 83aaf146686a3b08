package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

const twinUsage = `usage: methodd twin show [flags] DEVICE[/MODULE]
       methodd twin update [flags] DEVICE[/MODULE] [--tags JSON] [--desired JSON] [--etag E]

Reads (show) or changes (update) the twin of a device, or of a module of a
device, through the IoT Hub service REST API, as az iot hub device-twin
show/update do, and prints the twin document the hub returned. Flags may come
before or after DEVICE[/MODULE]; an id that starts with '-' goes after --.

update merges --tags into the twin's tags and --desired into its desired
properties (PATCH): a member set to null is removed, objects merge, any other
value replaces. At least one of the two is required; each is a JSON object
given as text, @FILE, or - (standard input). Reported properties belong to the
device and are not written here. --etag E makes the update conditional: it is
applied only if the twin's etag (the "etag" field show prints) is still E;
without --etag it is applied whatever the twin holds (If-Match "*").

The hub is --connection-string-file (or --connection-string, which other
local users can read in ps), else $IOTHUB_CONNECTION_STRING, else
$IOTHUB_SERVICE_CONNECTION_STRING; --local instead reads hub.json of the local
hub (methodd hub, methodd run --local) from --hub-dir.

Output (-o): json (default) prints the twin document on one line, the hub's
bytes with insignificant white space removed; pretty indents it.

Exit status: 0 success; 1 the update was refused because --etag is stale
(412 PreconditionFailed: the twin changed since that etag was read; show it
again and retry with the new etag); 2 usage or input error (bad flag, bad
target, --tags or --desired not a JSON object, found before any request;
or a patch the hub refuses with 400/413: a key with '.', '$' or a space,
too deep, too large); 3 device or module not found (404001, 404010); 5 any other hub, auth or
network error. Throttled (429) and unavailable (503) answers are retried
with back-off; nothing else is retried.

examples:
  methodd twin show --local dev-device
  methodd twin show -o pretty gw-017/edgeAgent
  methodd twin update gw-017 --desired '{"telemetryInterval": 30}'
  methodd twin update gw-017 --tags '{"site": "berlin", "oldTag": null}' --desired @desired.json
  etag=$(methodd twin show gw-017 | jq -r .etag)
  methodd twin update gw-017 --etag "$etag" --desired '{"mode": "eco"}'`

// twinCmd implements `methodd twin show|update`.
type twinCmd struct{ env Env }

// twinFlags are the parsed flags of `methodd twin show` and `update`; the
// last three are update's only.
type twinFlags struct {
	hub                 serviceFlags
	output              string
	tags, desired, etag string
}

// Run implements `methodd twin`: it dispatches to the subcommand. No
// subcommand or an unknown one is a usage error after the usage text.
func (c *twinCmd) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(c.env.Stderr, twinUsage)
		return usageError("twin: want a subcommand: show or update")
	}
	if run, ok := c.subs()[args[0]]; ok {
		return run(ctx, args[1:])
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(c.env.Stderr, twinUsage)
		return flag.ErrHelp
	default:
		fmt.Fprintln(c.env.Stderr, twinUsage)
		return usageError("twin: unknown subcommand %q: want show or update", args[0])
	}
}

// subs is the table of twin's subcommands.
func (c *twinCmd) subs() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{"show": c.show, "update": c.update}
}

// subcommands names twin's subcommands (for completion).
func (c *twinCmd) subcommands() []string { return slices.Sorted(maps.Keys(c.subs())) }

// show implements `methodd twin show`.
func (c *twinCmd) show(ctx context.Context, args []string) error {
	const cmd = "twin show"
	var f twinFlags
	fs := c.flagSet(cmd, &f)
	t, err := parseTwinArgs(cmd, fs, &f, args)
	if err != nil {
		return err
	}
	client, err := serviceClient(cmd, f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	doc, err := client.GetTwin(ctx, t.Device, t.Module)
	if err != nil {
		return twinExit(err)
	}
	return printDocument(c.env.Stdout, cmd, "twin", doc, f.output)
}

// update implements `methodd twin update`.
func (c *twinCmd) update(ctx context.Context, args []string) error {
	const cmd = "twin update"
	var f twinFlags
	fs := c.updateFlagSet(&f)
	t, err := parseTwinArgs(cmd, fs, &f, args)
	if err != nil {
		return err
	}
	patch, err := c.patch(fs, f)
	if err != nil {
		return err
	}
	client, err := serviceClient(cmd, f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	doc, err := client.UpdateTwin(ctx, t.Device, t.Module, patch, f.etag)
	if err != nil {
		return twinExit(err)
	}
	return printDocument(c.env.Stdout, cmd, "twin", doc, f.output)
}

// flagSet returns the flag set of a twin subcommand with the flags both
// have: the hub flags (as invoke's) and -o.
func (c *twinCmd) flagSet(cmd string, f *twinFlags) *flag.FlagSet {
	fs := newFlagSet(cmd, twinUsage, c.env.Stderr)
	addHubFlags(fs, &f.hub, c.env.Stderr)
	fs.StringVar(&f.output, "o", "json", "output: json (one line) or pretty")
	return fs
}

// updateFlagSet is flagSet plus update's own flags.
func (c *twinCmd) updateFlagSet(f *twinFlags) *flag.FlagSet {
	fs := c.flagSet("twin update", f)
	fs.StringVar(&f.tags, "tags", "", "JSON object merged into the twin's tags (text, @FILE or -)")
	fs.StringVar(&f.desired, "desired", "", "JSON object merged into the desired properties (text, @FILE or -)")
	fs.StringVar(&f.etag, "etag", "", `update only if the twin's etag is still this one (default "*": any)`)
	return fs
}

// parseTwinArgs parses args into fs, which writes into f, with flags before
// or after the target, then checks the flags both subcommands have and the
// one DEVICE[/MODULE] argument. Every error is a usage error.
func parseTwinArgs(cmd string, fs *flag.FlagSet, f *twinFlags, args []string) (invoke.Target, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return invoke.Target{}, err
	}
	if f.output != "json" && f.output != "pretty" {
		return invoke.Target{}, usageError("%s: -o %q: want json or pretty", cmd, f.output)
	}
	if err := f.hub.check(cmd); err != nil {
		return invoke.Target{}, err
	}
	if len(pos) != 1 {
		return invoke.Target{}, usageError("%s: want one DEVICE[/MODULE], got %d arguments (-h for help)", cmd, len(pos))
	}
	t, err := invoke.ParseTarget(pos[0])
	if err != nil {
		return invoke.Target{}, usageError("%s: %v", cmd, err)
	}
	return t, nil
}

// parseInterleaved parses args into fs and returns the positional
// arguments, which may come between flags (az's habit: `twin update DEV
// --desired ...`). After "--" every argument is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// patch checks --etag, reads --tags and --desired and renders the PATCH
// body {"tags":…,"properties":{"desired":…}} with only the parts given (on
// fs), each compacted. Neither given, either not a JSON object, or an etag
// that cannot be sent is a usage error.
func (c *twinCmd) patch(fs *flag.FlagSet, f twinFlags) ([]byte, error) {
	const cmd = "twin update"
	hasTags, hasDesired := isSet(fs, "tags"), isSet(fs, "desired")
	if !hasTags && !hasDesired {
		return nil, usageError("%s: nothing to update: give --tags, --desired or both", cmd)
	}
	if f.tags == "-" && f.desired == "-" {
		return nil, usageError("%s: --tags and --desired cannot both come from standard input", cmd)
	}
	if _, err := invoke.IfMatch(f.etag); err != nil {
		return nil, usageError("%s: --etag: %v", cmd, err)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	if hasTags {
		tags, err := readObjectFlag(cmd, "--tags", f.tags, c.env.Stdin)
		if err != nil {
			return nil, err
		}
		b.WriteString(`"tags":`)
		b.Write(tags)
	}
	if hasDesired {
		desired, err := readObjectFlag(cmd, "--desired", f.desired, c.env.Stdin)
		if err != nil {
			return nil, err
		}
		if hasTags {
			b.WriteByte(',')
		}
		b.WriteString(`"properties":{"desired":`)
		b.Write(desired)
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// readObjectFlag reads the value of a JSON-object flag: "-" is standard
// input, "@FILE" a file, anything else JSON text. It returns the object
// compacted. Anything but one JSON object is a usage error naming the flag.
func readObjectFlag(cmd, name, arg string, stdin io.Reader) ([]byte, error) {
	b, src, err := readJSONSource(cmd, name, arg, stdin)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, jsonSyntaxError(cmd, src, err)
	}
	if out.Len() > iothub.MaxPayloadBytes {
		return nil, usageError("%s: %s is larger than %d bytes", cmd, src, iothub.MaxPayloadBytes)
	}
	if kind := jsonKind(out.Bytes()); kind != "an object" {
		return nil, usageError("%s: %s must be a JSON object, got %s", cmd, src, kind)
	}
	return out.Bytes(), nil
}

// jsonKind names the kind of the valid, compact JSON value b.
func jsonKind(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "an object"
	case b[0] == '[':
		return "an array"
	case b[0] == '"':
		return "a string"
	case b[0] == 'n':
		return "null"
	case b[0] == 't' || b[0] == 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// twinExit maps an error of GetTwin or UpdateTwin to the exit code (see
// twinUsage): 3 for an unknown device or module; 1 for a stale etag (412),
// with a hint; 2 for an input the client or the hub (400, 413) refused; 5
// for everything else.
func twinExit(err error) error {
	var he *iothub.Error
	switch {
	case errors.As(err, &he) && (he.Code == iothub.CodeDeviceNotFound || he.Code == iothub.CodeModuleNotFound):
		return withExit(exitUnreachable, err)
	case errors.As(err, &he) && he.HTTPStatus == http.StatusPreconditionFailed:
		return withExit(exitFailure, fmt.Errorf("%w; the twin has changed since that etag was read: run `methodd twin show` for the current etag and retry", err))
	case errors.Is(err, invoke.ErrTwinPatch), errors.Is(err, invoke.ErrTarget):
		return withExit(exitUsage, err)
	case errors.As(err, &he) && (he.HTTPStatus == http.StatusBadRequest || he.HTTPStatus == http.StatusRequestEntityTooLarge):
		// The hub refused the patch itself (a key with '.', too deep, too
		// big): bad input, as bad JSON is, not a hub failure.
		return withExit(exitUsage, err)
	default:
		return withExit(exitHubError, err)
	}
}
