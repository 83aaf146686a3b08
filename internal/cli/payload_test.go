package cli

import (
	"errors"
	"strings"
	"testing"
)

// TestJSONSourcesAreBounded: a PAYLOAD or an object flag read from an
// endless file or standard input is refused as too large after a bounded
// read, never read to its end.
func TestJSONSourcesAreBounded(t *testing.T) {
	endless := strings.NewReader(strings.Repeat(" ", maxJSONSource+10))
	read := map[string]func() error{
		"payload @/dev/zero": func() error { _, err := readPayload("invoke", "@/dev/zero", nil); return err },
		"payload -":          func() error { _, err := readPayload("invoke", "-", endless); return err },
		"--desired @/dev/zero": func() error {
			_, err := readObjectFlag("twin update", "--desired", "@/dev/zero", nil)
			return err
		},
	}
	for name, f := range read {
		t.Run(name, func(t *testing.T) {
			err := f()
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "is larger than") {
				t.Fatalf("got %v, want a usage error saying it is too large", err)
			}
		})
	}
}
