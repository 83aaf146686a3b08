package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/daemon"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// BenchmarkDaemonPath is device (a) in one process, for pprof: the local hub
// and the daemon as `methodd run` runs it (daemon.Run: the device session,
// internal/device with paho, and the engine with the expression echo),
// driven through Hub.Invoke with 16 calls in flight. The harness measures
// the daemon as a separate process; this benchmark is where its CPU goes.
// daemon.Run applies the daemon's GOGC (200) to the whole process unless
// GOGC is set for the test. Set BENCH_LOG=info to include the per-call log
// line (JSON to io.Discard), as `methodd run` writes it by default.
//
//	go test -run '^$' -bench DaemonPath -cpuprofile cpu.out ./test/bench
//	go tool pprof -top -focus 'methodd/(engine|internal/(daemon|device))|paho' bench.test cpu.out
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
		//nolint:sloglint // BENCH_LOG=info measures the cost of formatting log records, which DiscardHandler skips.
		logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := filepath.Join(dir, "handlers.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, exprConfig, info.CAFile), 0o600); err != nil {
		b.Fatal(err)
	}
	opts := handlersfile.Options{DaemonUID: os.Geteuid(), Engine: engine.Options{Logger: logger}}
	loaded, err := handlersfile.Load(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := iothub.ParseDeviceConnectionString(info.Devices["dev"])
	if err != nil {
		b.Fatal(err)
	}
	roots := testkit.CertPool(b, info.CAFile)
	connected := make(chan struct{})
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() {
		runErr = daemon.Run(ctx, daemon.Config{Path: cfg, Loaded: loaded, Load: opts,
			Device: device.Config{Identity: cs, RootCAs: roots}, Getenv: gogcOnly, Logger: logger,
			OnReady: func() { close(connected) }})
	})
	defer func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			b.Errorf("daemon.Run: %v", runErr)
		}
	}()
	select {
	case <-connected:
	case <-time.After(readyTimeout):
		b.Fatal("daemon not connected")
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

// gogcOnly is the environment of an in-process daemon: GOGC as the
// benchmark was given it (an operator's GOGC wins over the daemon's
// default, as for `methodd run`), and nothing of systemd's, so that a run
// under a service manager never notifies it.
func gogcOnly(key string) string {
	if key == "GOGC" {
		return os.Getenv(key)
	}
	return ""
}

// BenchmarkExecPath compares, in one process and one at a time, the engine
// running `run: [/bin/true]` (device (b)'s handler, no hub) with a bare
// exec.Command("/bin/true").Run(): the part of (b)'s cost that is the
// engine's command runner rather than fork/exec itself.
//
//	go test -run '^$' -bench ExecPath -cpuprofile cpu.out ./test/bench
func BenchmarkExecPath(b *testing.B) {
	b.Run("engine", func(b *testing.B) {
		set, err := engine.Parse("handlers.yaml", fmt.Appendf(nil, execConfig, "/dev/null"), engine.Options{})
		if err != nil {
			b.Fatal(err)
		}
		eng := engine.New(set)
		payload := []byte(`{"id":"000000000001","pad":"x"}`)
		defer reportSelfCPU(b)()
		rid := 0
		for b.Loop() {
			rid++ // a fresh request id per call: a repeated one is answered from the engine's memory
			rep := eng.Call(b.Context(), engine.Request{Method: echoMethod, RequestID: strconv.Itoa(rid), DeviceID: "dev", Payload: payload})
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
