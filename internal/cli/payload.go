package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// readPayload reads the PAYLOAD argument of invoke and call: "-" is standard
// input, "@FILE" a file, anything else JSON text. White space around the
// value is dropped; the value's bytes are kept verbatim. Anything but one
// JSON value of at most 128 KB is a usage error naming cmd.
func readPayload(cmd, arg string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	src := "payload"
	switch {
	case arg == "-":
		src = "payload from standard input"
		var err error
		if b, err = io.ReadAll(io.LimitReader(stdin, 4*iothub.MaxPayloadBytes)); err != nil {
			return nil, usageError("%s: read %s: %v", cmd, src, err)
		}
	case strings.HasPrefix(arg, "@"):
		src = "payload file " + arg[1:]
		var err error
		if b, err = os.ReadFile(arg[1:]); err != nil {
			return nil, usageError("%s: read payload: %v", cmd, err)
		}
	default:
		b = []byte(arg)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, usageError("%s: %s is empty; omit PAYLOAD for null", cmd, src)
	}
	if len(b) > iothub.MaxPayloadBytes {
		return nil, usageError("%s: %s is larger than the hub's limit of %d bytes", cmd, src, iothub.MaxPayloadBytes)
	}
	var v json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, usageError("%s: %s is not valid JSON: %v (at byte %d)", cmd, src, se, se.Offset)
		}
		return nil, usageError("%s: %s is not valid JSON: %v", cmd, src, err)
	}
	return b, nil
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

// hubChoice is the hub a run talks to and where that choice came from.
type hubChoice struct {
	cs     iothub.ConnectionString
	source string // "--connection-string", "$IOTHUB_CONNECTION_STRING", "hub.json", ...
	caFile string // the local hub's CA
	addr   string // the local hub's HTTPS listener
}

// resolveHub picks the hub (design §1): --local reads hub.json; otherwise
// --connection-string, else $IOTHUB_CONNECTION_STRING, else
// $IOTHUB_SERVICE_CONNECTION_STRING. A missing or malformed string is a usage
// error that never quotes the string.
func resolveHub(f invokeFlags, getenv func(string) string) (hubChoice, error) {
	if f.local {
		return localHub(f.hubDir, getenv)
	}
	var h hubChoice
	s := f.connectionString
	h.source = "--connection-string"
	for _, env := range []string{"IOTHUB_CONNECTION_STRING", "IOTHUB_SERVICE_CONNECTION_STRING"} {
		if s == "" {
			s, h.source = getenv(env), "$"+env
		}
	}
	if s == "" {
		return h, usageError("invoke: no hub: give --connection-string, set IOTHUB_CONNECTION_STRING, or use --local")
	}
	cs, err := iothub.ParseServiceConnectionString(s)
	if err != nil {
		return h, usageError("invoke: connection string (%s): %v", h.source, err)
	}
	h.cs = cs
	return h, nil
}

// localHub reads the local hub's hub.json. No hub there is exit 5: the hub,
// not the command line, is missing.
func localHub(dir string, getenv func(string) string) (hubChoice, error) {
	h := hubChoice{source: "hub.json"}
	if dir == "" {
		d, err := localhub.DefaultDir(getenv)
		if err != nil {
			return h, usageError("invoke: --local: %v; give --hub-dir", err)
		}
		dir = d
	}
	info, err := localhub.ReadInfo(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return h, withExit(exitHubError, fmt.Errorf("invoke: no local hub in %s (start one with `methodd hub` or `methodd run --local`)", dir))
	}
	if err != nil {
		return h, withExit(exitHubError, fmt.Errorf("invoke: --local: %v", err))
	}
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		return h, withExit(exitHubError, fmt.Errorf("invoke: --local: service connection string in %s: %v", dir, err))
	}
	h.cs, h.caFile, h.addr = cs, info.CAFile, info.HTTPSAddr
	return h, nil
}

// addRoots adds the PEM certificates of file to pool.
func addRoots(pool *x509.CertPool, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate", file)
	}
	return nil
}
