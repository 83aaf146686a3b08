package localhub_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// BenchmarkTwinDevice times one device's twin requests back to back, each
// waiting for its answer: GET (memory only) as the baseline of the same
// run, and reported PATCH, which also writes the twin file (atomically,
// with fsync) before it answers.
func BenchmarkTwinDevice(b *testing.B) {
	th := startHub(b, localhub.Options{Logger: slog.New(slog.DiscardHandler)})
	d := th.mustConnect(b, "dev1")
	got := twinClient(b, d, false)
	patch := `{"methodd":{"configDigest":"sha256:` + strings.Repeat("ab", 32) + `","methods":["a","b","c"]}}`
	for _, bc := range []struct {
		name  string
		topic func(string) string
		body  string
	}{
		{"get", iothub.TwinGetTopic, " "},
		{"patch-reported", iothub.TwinReportedTopic, patch},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				publish(b, d, bc.topic(fmt.Sprint(i)), bc.body)
				if m := next(b, got); !strings.Contains(m.topic, "/res/20") {
					b.Fatalf("answer %q", m.topic)
				}
			}
		})
	}
}
