package engine

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// benchCalls calls r on the config src until the benchmark ends; every
// reply must be a 200. Replies are released, as the daemon does once a
// reply is written.
func benchCalls(b *testing.B, src string, r Request) {
	b.Helper()
	s := mustParse(b, src, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rep := s.Call(ctx, r)
		if rep.Status != 200 {
			b.Fatalf("status %d: %.100s", rep.Status, rep.Payload)
		}
		rep.Release()
	}
}

// BenchmarkExprCall is the whole per-call cost of an expression method:
// payload decoding, limiter, environment, expr evaluation and JSON encoding
// of the reply (design §2's ping).
func BenchmarkExprCall(b *testing.B) {
	benchCalls(b, `
version: 1
methods:
  ping:
    reply: {payload: '{"pong": true, "time": now(), "echo": payload}'}
`, Request{Method: "ping", RequestID: "1", DeviceID: "dev", Payload: []byte(`{"seq":1}`)})
}

// BenchmarkExprEcho is device (a) of the benchmark harness without the
// transport: the expression `payload` echoes an 8 KB request, so the
// payload is decoded and encoded again in full.
func BenchmarkExprEcho(b *testing.B) {
	payload := []byte(`{"id":"000000000001","pad":"` + strings.Repeat("x", 8<<10-32) + `"}`)
	b.SetBytes(int64(len(payload)))
	benchCalls(b, `
version: 1
methods:
  echo:
    reply: {payload: 'payload'}
`, Request{Method: "echo", RequestID: "1", DeviceID: "dev", Payload: payload})
}

// BenchmarkExprCallParams adds params validation and a status expression.
func BenchmarkExprCallParams(b *testing.B) {
	benchCalls(b, `
version: 1
methods:
  set:
    params:
      level: {type: integer, min: 0, max: 9, required: true}
      mode: {type: string, enum: [fast, slow], default: fast}
    reply:
      status: 'params.level > 5 ? 202 : 200'
      payload: '{"level": params.level, "mode": params.mode, "device": deviceId}'
`, Request{Method: "set", RequestID: "1", DeviceID: "dev", Payload: []byte(`{"level":3}`)})
}

// BenchmarkRunTrue runs /bin/true through the engine (argv, environment,
// process group, pipes, default reply); compare with BenchmarkRawExecTrue.
func BenchmarkRunTrue(b *testing.B) {
	s := mustParse(b, "version: 1\nmethods:\n  t: {run: [/bin/true]}\n", Options{})
	ctx := context.Background()
	r := Request{Method: "t"}
	b.ReportAllocs()
	for b.Loop() {
		if rep := s.Call(ctx, r); rep.Status != 200 {
			b.Fatalf("status %d: %s", rep.Status, rep.Payload)
		}
	}
}

// BenchmarkRawExecTrue is the floor: os/exec running /bin/true.
func BenchmarkRawExecTrue(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunTrueVsRaw interleaves one engine call of /bin/true and one raw
// os/exec of it per iteration, so that machine load hits both alike, and
// reports their time ratio (target: at most 1.2).
func BenchmarkRunTrueVsRaw(b *testing.B) {
	s := mustParse(b, "version: 1\nmethods:\n  t: {run: [/bin/true]}\n", Options{})
	ctx := context.Background()
	var engineNs, rawNs int64
	for b.Loop() {
		t0 := time.Now()
		if rep := s.Call(ctx, Request{Method: "t"}); rep.Status != 200 {
			b.Fatalf("status %d: %s", rep.Status, rep.Payload)
		}
		t1 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		engineNs += t1.Sub(t0).Nanoseconds()
		rawNs += time.Since(t1).Nanoseconds()
	}
	b.ReportMetric(float64(engineNs)/float64(rawNs), "engine/raw")
}
