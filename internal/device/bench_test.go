package device_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// BenchmarkDeviceExprCall measures one expression-method call end to end in
// one process: hub.Invoke → MQTT/TLS → session → engine → reply → hub. The
// cpu-µs/op metric is the whole process (hub and device); the daemon-only
// figure comes from TestRunResourceUsage in package main, which runs the
// daemon as its own process.
func BenchmarkDeviceExprCall(b *testing.B) {
	hub := startE2EHub(b, false, "bench")
	cfg := hub.config(b, "bench")
	st := runSession(b, cfg, newEngineHandler(b, e2eYAML, cfg.Identity))
	st.waitConnected(b, 20*time.Second)
	req := iothub.MethodRequest{MethodName: "hello", Payload: json.RawMessage(`{"name":"b"}`), ResponseTimeoutInSeconds: 10}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := testkit.ProcessCPU()
	b.ResetTimer()
	for b.Loop() {
		res, herr := hub.Invoke(ctx, "bench", "", req)
		if herr != nil || res.Status != 200 {
			b.Fatalf("got %v %v", res, herr)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((testkit.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
