package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

const queryUsage = `usage: methodd query [flags] "SELECT * FROM devices [WHERE CONDITION]"

Runs a query of the IoT Hub query language through the service REST API
(POST /devices/query), as az iot hub query does, and prints every item it
returns, one per line: the hub's JSON with insignificant white space removed.
Pages are followed through their continuation tokens until the last one.
Flags may come before or after the query.

Sources: devices (device twins), devices.modules (module twins),
devices.jobs (per-device job records). Conditions: deviceId, tags.*,
properties.desired.*, properties.reported.*, status, connectionState, ...
compared with = != <> < > <= >=, IN [...], NIN [...], combined with AND, OR,
NOT and parentheses; IS_DEFINED(path). Keywords are case-insensitive;
strings are in single or double quotes.

--page-size N asks for N items per request (1..1000); without it the hub
picks (the local hub: 100). It changes how many requests are made, never
what is printed.

The hub is --connection-string-file (or --connection-string, which other
local users can read in ps), else $IOTHUB_CONNECTION_STRING, else
$IOTHUB_SERVICE_CONNECTION_STRING; --local instead reads hub.json of the local
hub (methodd hub, methodd run --local) from --hub-dir.

Exit status: 0 success (also when nothing matches); 1 the output could not be
written; 2 usage error, or a query the hub refuses (400: its message names
the position of the error); 5 any other hub, auth or network error (items of
the pages before it are printed). Throttled (429) and unavailable (503)
answers are retried with back-off.

examples:
  methodd query --local "SELECT * FROM devices"
  methodd query "SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.fw < '2.0'"
  methodd query "SELECT * FROM devices WHERE deviceId IN ['gw-1', 'gw-2']" | jq -r .deviceId
  methodd query --page-size 1000 "SELECT * FROM devices.modules WHERE moduleId = 'edgeAgent'"
  methodd query "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-1'"`

// queryCmd implements `methodd query`.
type queryCmd struct{ env Env }

// queryFlags are the parsed flags of `methodd query`.
type queryFlags struct {
	hub      serviceFlags
	pageSize int
}

// Run implements `methodd query`: it checks the arguments, runs the query
// and prints one JSON line per item as pages arrive.
func (c *queryCmd) Run(ctx context.Context, args []string) error {
	var f queryFlags
	fs := newFlagSet("query", queryUsage, c.env.Stderr)
	addHubFlags(fs, &f.hub, c.env.Stderr)
	fs.IntVar(&f.pageSize, "page-size", 0, "items per request, 1..1000 (default: the hub's)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := f.hub.check("query"); err != nil {
		return err
	}
	if isSet(fs, "page-size") && (f.pageSize < 1 || f.pageSize > invoke.MaxQueryPageSize) {
		return usageError("query: --page-size %d: want 1 to %d", f.pageSize, invoke.MaxQueryPageSize)
	}
	if len(pos) != 1 || pos[0] == "" {
		return usageError("query: want one query, e.g. \"SELECT * FROM devices WHERE tags.site = 'a'\" (quote it), got %d arguments (-h for help)", len(pos))
	}
	client, err := serviceClient("query", f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	var werr error
	err = client.Query(ctx, pos[0], f.pageSize, func(item json.RawMessage) error {
		var b bytes.Buffer
		if err := json.Compact(&b, item); err != nil { // items are valid JSON: the page parsed
			return err
		}
		b.WriteByte('\n')
		_, werr = c.env.Stdout.Write(b.Bytes())
		return werr
	})
	if werr != nil {
		return withExit(exitFailure, fmt.Errorf("query: write the results: %w", werr))
	}
	return queryExit(err)
}

// queryExit maps an error of Client.Query to the exit code (see
// queryUsage): 2 for a query the client or the hub (400) refused, 5 for
// everything else.
func queryExit(err error) error {
	var he *iothub.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, invoke.ErrQuery), errors.As(err, &he) && he.HTTPStatus == http.StatusBadRequest:
		return withExit(exitUsage, err)
	default:
		return withExit(exitHubError, err)
	}
}
