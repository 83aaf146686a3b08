package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/handlersfile"
)

const callUsage = `usage: methodd call [--config FILE] [flags] METHOD [PAYLOAD]

Run one method of a handlers file through the same engine as "methodd run",
without any hub, and print {"status":N,"payload":...} on one line. PAYLOAD is
JSON text, @FILE, or - for stdin; omitted means null. Flags go before METHOD.
The file is loaded as "methodd run" loads it; its warnings go to stderr, and
so do unsafe permissions (which run refuses), with their fix.
An async method runs to its end: its 202 line is followed by the task's final
taskStatus line. A detach method's command is started after its reply line.
Exit 0 for a 2xx status (for an async method: the task succeeded), 1
otherwise, 2 for bad JSON or an invalid file.

examples:
  methodd call --config handlers.yaml.example ping
  methodd call --config handlers.yaml.example diskUsage '{"path": "/"}'
  echo '{"flag": "-r"}' | methodd call --config handlers.yaml.example kernel -`

// callCmd implements `methodd call`.
type callCmd struct{ env Env }

// Run loads the file, makes one call and prints the reply.
func (c *callCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("call", callUsage, c.env.Stderr)
	config := fs.String("config", engine.DefaultConfigPath, "handlers file")
	deviceID := fs.String("device-id", "local", "device id the method sees (deviceId, METHODD_DEVICE_ID)")
	moduleID := fs.String("module-id", "", "module id the method sees (moduleId, METHODD_MODULE_ID)")
	requestID := fs.String("request-id", "1", "request id the method sees (requestId, METHODD_REQUEST_ID)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 1 || len(rest) > 2 {
		fs.Usage()
		return usageError("call: expected METHOD [PAYLOAD]")
	}
	var payload []byte
	if len(rest) == 2 {
		p, err := readPayload("call", rest[1], c.env.Stdin)
		if err != nil {
			return err
		}
		payload = p
	}
	set, err := c.load(*config)
	if err != nil {
		return err
	}
	rep := set.Call(ctx, engine.Request{Method: rest[0], RequestID: *requestID, DeviceID: *deviceID, ModuleID: *moduleID, Payload: payload})
	if err := c.print(rep); err != nil {
		return err
	}
	if rep.After != nil { // detach: the reply is out, now the command starts
		rep.After()
	}
	if id := taskID(rep); id != "" { // async: run the task to its end, then print its status
		if final, ok := set.WaitTask(ctx, id); ok {
			if err := c.print(final); err != nil {
				return err
			}
			rep = final
			if status := taskStatusOf(final); status != "" && status != engine.TaskSucceeded {
				return withExit(exitFailure, errSilent)
			}
		}
	}
	if rep.Status < 200 || rep.Status > 299 {
		return withExit(exitFailure, errSilent)
	}
	return nil
}

// print writes {"status":N,"payload":...} on one line.
func (c *callCmd) print(rep engine.Reply) error {
	var line bytes.Buffer
	fmt.Fprintf(&line, `{"status":%d,"payload":`, rep.Status)
	if err := json.Compact(&line, rep.Payload); err != nil {
		return fmt.Errorf("call: reply payload: %w", err)
	}
	line.WriteString("}\n")
	_, err := c.env.Stdout.Write(line.Bytes())
	return err
}

// taskID is the taskId of an async method's 202 reply, "" for any other.
func taskID(rep engine.Reply) string {
	if rep.Status != 202 {
		return ""
	}
	var body struct {
		TaskID string `json:"taskId"`
	}
	_ = json.Unmarshal(rep.Payload, &body)
	return body.TaskID
}

// taskStatusOf is the status member of a taskStatus reply.
func taskStatusOf(rep engine.Reply) string {
	var body struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(rep.Payload, &body)
	return body.Status
}

// load loads the file by the one load path and prints its warnings (unsafe
// permissions first) on stderr; an invalid file is a usage error.
func (c *callCmd) load(path string) (*engine.Set, error) {
	l, err := handlersfile.Load(path, handlersfile.Options{DaemonUID: os.Geteuid()})
	warnings := handlersfile.UnsafeWarnings(path, l.Unsafe)
	if l.Unsafe != nil {
		warnings = append(warnings, engine.Diagnostic{File: path, Severity: engine.SeverityWarning,
			Message: `"methodd run" refuses this file until its permissions are fixed`})
	}
	var diags engine.Diagnostics
	switch {
	case errors.As(err, &diags):
		fmt.Fprintln(c.env.Stderr, append(warnings, diags...).Error())
		return nil, withExit(exitUsage, fmt.Errorf("call: %s is not valid (see methodd check)", path))
	case err != nil:
		return nil, withExit(exitUsage, fmt.Errorf("call: %w", err))
	}
	for _, w := range append(warnings, l.Set.Warnings()...) {
		fmt.Fprintln(c.env.Stderr, w.String())
	}
	return l.Set, nil
}
