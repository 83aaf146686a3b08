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
