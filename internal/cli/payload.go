package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/methodd/methodd/iothub"
)

// readPayload reads the PAYLOAD argument of invoke and call: "-" is standard
// input, "@FILE" a file, anything else JSON text. White space around the
// value is dropped; the value's bytes are kept verbatim. Anything but one
// JSON value of at most 128 KB is a usage error naming cmd.
func readPayload(cmd, arg string, stdin io.Reader) (json.RawMessage, error) {
	b, src, err := readJSONSource(cmd, "payload", arg, stdin)
	if err != nil {
		return nil, err
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
		return nil, jsonSyntaxError(cmd, src, err)
	}
	return b, nil
}

// maxJSONSource bounds what is read of a JSON argument's file or standard
// input: the hub's 128 KB limit with room for white space. More is read as
// too large, never to its end (a "@/dev/zero" ends there too).
const maxJSONSource = 4 * iothub.MaxPayloadBytes

// readJSONSource reads the text of a JSON argument: "-" is standard input,
// "@FILE" a file, anything else the argument itself; at most
// maxJSONSource+1 bytes of a file or standard input, more is a usage
// error. src names the source
// in errors (label, "label file F" or "label from standard input"); a read
// failure is a usage error naming cmd.
func readJSONSource(cmd, label, arg string, stdin io.Reader) (b []byte, src string, err error) {
	switch {
	case arg == "-":
		src = label + " from standard input"
		b, err = io.ReadAll(io.LimitReader(stdin, maxJSONSource+1))
	case strings.HasPrefix(arg, "@"):
		src = label + " file " + arg[1:]
		var f *os.File
		if f, err = os.Open(arg[1:]); err == nil {
			b, err = io.ReadAll(io.LimitReader(f, maxJSONSource+1))
			f.Close()
		}
	default:
		return []byte(arg), label, nil
	}
	switch {
	case err != nil:
		return nil, src, usageError("%s: read %s: %v", cmd, src, err)
	case len(b) > maxJSONSource:
		return nil, src, usageError("%s: %s is larger than the hub's limit of %d bytes", cmd, src, iothub.MaxPayloadBytes)
	}
	return b, src, nil
}

// jsonSyntaxError is the usage error for src that is not valid JSON, with
// the byte offset when there is one.
func jsonSyntaxError(cmd, src string, err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return usageError("%s: %s is not valid JSON: %v (at byte %d)", cmd, src, se, se.Offset)
	}
	return usageError("%s: %s is not valid JSON: %v", cmd, src, err)
}
