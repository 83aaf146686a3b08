package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/serve"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// BenchmarkDaemonPath is device (a) in one process, for pprof: the local hub,
// the device session (internal/device, paho) and the engine with the
// expression echo, driven through Hub.Invoke with 16 calls in flight. The
// harness measures the daemon as a separate process; this benchmark is where
// its CPU goes. Set BENCH_LOG=info to include the per-call log line (JSON
// to io.Discard), as `methodd run` writes it by default.
//
//	go test -run '^$' -bench DaemonPath -cpuprofile cpu.out ./bench
//	go tool pprof -top -focus 'methodd/(engine|internal/device)|paho' bench.test cpu.out
func BenchmarkDaemonPath(b *testing.B) {
	for _, size := range []int{100, 8 << 10} {
		b.Run(sizeName(size), func(b *testing.B) { benchDaemonPath(b, size) })
	}
}

func benchDaemonPath(b *testing.B, size int) {
	dir := b.TempDir()
	hub, err := localhub.Start(b.Context(), localhub.Options{Dir: filepath.Join(dir, "hub"), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
		Devices: []string{"dev"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	info := hub.Info()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("BENCH_LOG") == "info" {
		logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := filepath.Join(dir, "handlers.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, exprConfig, info.CAFile), 0o600); err != nil {
		b.Fatal(err)
	}
	set, err := engine.Load(cfg, engine.Options{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	cs, err := iothub.ParseDeviceConnectionString(info.Devices["dev"])
	if err != nil {
		b.Fatal(err)
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	connected := make(chan struct{})
	var once sync.Once
	sess, err := device.New(device.Config{Identity: cs, RootCAs: roots, Logger: logger, OnState: func(s device.State) {
		if s.Kind == device.Connected {
			once.Do(func() { close(connected) })
		}
	}}, serve.Handler{Engine: engine.New(set), DeviceID: "dev"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sess.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	select {
	case <-connected:
	case <-time.After(readyTimeout):
		b.Fatal("device session not connected")
	}
	var ids atomic.Uint64
	maker, err := newPayloadMaker(&ids, size)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0 := time.Now()
	r := runLoad(ctx, loadSpec{caller: mqttCaller{hub: hub}, device: "dev", inflight: 16, maker: maker,
		maxCalls: b.N, deadline: time.Now().Add(10 * time.Minute)})
	b.ReportMetric(float64(len(r.lat))/time.Since(t0).Seconds(), "calls/s")
	if r.lost+r.mismatched > 0 {
		b.Fatalf("%d lost, %d mismatched: %s", r.lost, r.mismatched, r.firstErr)
	}
}

// BenchmarkExecPath compares, in one process and one at a time, the engine
// running `run: [/bin/true]` (device (b)'s handler, no hub) with a bare
// exec.Command("/bin/true").Run(): the part of (b)'s cost that is the
// engine's command runner rather than fork/exec itself.
//
//	go test -run '^$' -bench ExecPath -cpuprofile cpu.out ./bench
func BenchmarkExecPath(b *testing.B) {
	b.Run("engine", func(b *testing.B) {
		cfg := filepath.Join(b.TempDir(), "handlers.yaml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, execConfig, "/dev/null"), 0o600); err != nil {
			b.Fatal(err)
		}
		set, err := engine.Load(cfg, engine.Options{})
		if err != nil {
			b.Fatal(err)
		}
		eng := engine.New(set)
		payload := []byte(`{"id":"000000000001","pad":"x"}`)
		defer reportSelfCPU(b)()
		for b.Loop() {
			rep := eng.Call(b.Context(), engine.Request{Method: echoMethod, RequestID: "1", DeviceID: "dev", Payload: payload})
			if rep.Status != 200 || !sameJSON(rep.Payload, payload) {
				b.Fatalf("reply %d %s", rep.Status, rep.Payload)
			}
		}
	})
	b.Run("os-exec", func(b *testing.B) {
		defer reportSelfCPU(b)()
		for b.Loop() {
			if err := exec.CommandContext(b.Context(), "/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportSelfCPU reports the process's own CPU per op (children excluded:
// the forks' cost to the caller) when the returned func runs.
func reportSelfCPU(b *testing.B) func() {
	start := testkit.ProcessCPU()
	return func() {
		b.ReportMetric(float64((testkit.ProcessCPU()-start).Microseconds())/float64(b.N), "self-cpu-µs/op")
	}
}
