package localhub_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// registryInFlight is how many registry creates BenchmarkRegistryCreate
// keeps going, as `methodd simulate --local` does.
const registryInFlight = 32

// BenchmarkRegistryCreate: PUT /devices/{id} creates of new devices, 32 in
// flight, into a registry already holding 0, 1,000 or 5,000 devices.
// Reports creates/s.
func BenchmarkRegistryCreate(b *testing.B) {
	for _, existing := range []int{0, 1000, 5000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			dir := b.TempDir()
			writeBenchRegistry(b, dir, existing)
			th := startHub(b, localhub.Options{Dir: dir, Devices: []string{}, Logger: slog.New(slog.DiscardHandler)})
			auth := th.serviceToken(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range registryInFlight {
				wg.Go(func() {
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						id := fmt.Sprintf("new-%d", n)
						r := th.request(b, http.MethodPut, iothub.DevicePath(id, "")+"?"+iothub.MethodsQuery, auth, []byte(`{"deviceId":"`+id+`"}`))
						if r.status != http.StatusOK {
							b.Errorf("create %s: %d %s", id, r.status, r.body)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
		})
	}
}

// writeBenchRegistry writes dir/registry.json holding n devices in the
// registry.json format of every hub version (identities inline), which a
// hub migrates when it stores identities elsewhere.
func writeBenchRegistry(b *testing.B, dir string, n int) {
	b.Helper()
	key := func() string {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	type ident struct {
		PrimaryKey   string `json:"primaryKey"`
		SecondaryKey string `json:"secondaryKey"`
		Status       string `json:"status"`
		GenerationID string `json:"generationId"`
		ETag         uint64 `json:"etag"`
	}
	doc := struct {
		Policies   map[string]string `json:"policies"`
		Identities map[string]ident  `json:"identities"`
	}{map[string]string{"iothubowner": key(), "service": key()}, make(map[string]ident, n)}
	for i := range n {
		doc.Identities[fmt.Sprintf("old-%d", i)] = ident{key(), key(), "enabled", "638512345678901234", 0}
	}
	data, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registry.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
}
