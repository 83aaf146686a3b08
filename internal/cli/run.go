package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/logbatch"
	"github.com/methodd/methodd/internal/sdnotify"
	"github.com/methodd/methodd/internal/serve"
)

const runUsage = `usage: methodd run [--config FILE] [--connection-string-file FILE] [--local [--hub-dir DIR] [--device ID[/MODULE]]]
                   [--log-format text|json] [--log-level LEVEL] [--drain-timeout D] [--sas-ttl D]

Connect this gateway to IoT Hub over MQTT and answer every direct method from
the handlers file, until SIGINT/SIGTERM; then stop taking calls, let running
ones finish (at most --drain-timeout) and exit 0.

The handlers file is reloaded when it changes (editors, git, symlink swaps)
and on SIGHUP; an invalid or unsafe version is logged and the running one
kept. Under systemd (Type=notify) READY=1 is sent once subscribed, and the
watchdog is fed while connected or reconnecting on schedule.

The device identity is the first found of: --connection-string-file; the
file's connection.connection_string_file; $CREDENTIALS_DIRECTORY/device-
connection-string (systemd LoadCredential=); $IOTHUB_DEVICE_CONNECTION_STRING.
With --local, a local hub runs in-process instead (state in --hub-dir, free
ports on 127.0.0.1, hub.json written for 'methodd invoke --local'), the device
is registered on it and the daemon connects to it over TLS.

examples:
  methodd run --local --config handlers.yaml.example
  methodd run --config /etc/methodd/handlers.yaml --log-format json
  IOTHUB_DEVICE_CONNECTION_STRING='HostName=...;DeviceId=...;SharedAccessKey=...' methodd run`

// minSASTTL is the shortest --sas-ttl: renewal at ~80 % must leave time
// for a connection attempt.
const minSASTTL = 5 * time.Second

// defaultDrainTimeout bounds the wait for running calls at shutdown.
const defaultDrainTimeout = 10 * time.Second

// runCmd implements `methodd run`.
type runCmd struct{ io stdio }

// runFlags are the parsed flags of `methodd run`.
type runFlags struct {
	config, hubDir, device, csFile string
	local, hubDirSet               bool
	logFormat, logLevel            string
	drainTimeout, sasTTL           time.Duration
}

// Run loads the handlers, resolves the identity (or starts the local hub),
// and runs the device session until ctx is done, reloading the handlers on
// file changes and SIGHUP and keeping systemd informed. An invalid config
// prints its diagnostics and exits 2; an unsafe one exits 1.
func (c *runCmd) Run(ctx context.Context, args []string) error {
	f, err := c.parse(args)
	if err != nil {
		return err
	}
	// Everything the daemon writes to stderr from here on goes through one
	// batching writer: a busy daemon writes a log line per call, and those
	// lines then share write(2)s instead of each costing one on the reply's
	// path. Close writes out what is still buffered.
	errw := logbatch.New(c.io.err)
	defer errw.Close()
	logger, err := newLogger(errw, "run", f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	// From here on SIGHUP never kills the daemon: the reloader acts on it
	// while it runs; this guard swallows it before and after.
	stopHUP := guardSIGHUP()
	defer stopHUP()
	parse := func(file string, data []byte) (*engine.Set, error) {
		return engine.Parse(file, data, engine.Options{Logger: logger.With("component", "engine")})
	}
	set, data, err := c.load(errw, f, parse, logger)
	if err != nil {
		return err
	}
	eng := engine.New(set)
	id, err := resolveIdentity(ctx, f, set.Connection(), c.io.getenv, logger)
	if err != nil {
		return err
	}
	if id.hub != nil {
		defer id.hub.Close()
	}
	notifier := sdnotify.New(c.io.getenv)
	health := newRunHealth(notifier, id.cs.ClientID(), fmt.Sprintf("%d methods, config %.12s", len(set.Methods()), set.Digest()),
		time.Now, func() { c.started(errw, f, id) })
	setGCPercent(c.io.getenv)
	calls := new(callCounter)
	sess, err := c.session(f, id, set.Connection(), eng, calls, logger, health.onState)
	if err != nil {
		return err
	}
	rl, err := newReloader(reloaderConfig{Path: f.config, Baseline: data, Parse: parse, Engine: eng,
		Notifier: notifier, Logger: logger, DaemonUID: os.Geteuid(), Status: health.status})
	if err != nil {
		return fmt.Errorf("run: watch %s: %w", f.config, err)
	}
	logger.Info("starting", "config", f.config, "methods", len(set.Methods()), "identity", id.cs.ClientID(),
		"identitySource", id.source, "host", id.cs.HostName, "dial", id.cs.DialHost())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := rl.Run(ctx); err != nil {
			logger.Error("config watch failed; changes now apply only at restart", "err", err)
		}
	})
	wg.Go(func() { health.watchdog(ctx, c.io.getenv, os.Getpid()) })
	wg.Go(func() {
		t := time.NewTicker(idleTrimEvery)
		defer t.Stop()
		trimWhenIdle(ctx, calls, t.C, returnMemory)
	})
	wg.Go(func() {
		<-ctx.Done()
		_ = notifier.Stopping()
	})
	err = sess.Run(ctx)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// started runs once, when the first subscription is in place.
func (c *runCmd) started(w io.Writer, f runFlags, id identity) {
	// Start-up is over: hand its garbage (YAML nodes, expression
	// compilation, certificate parsing) back to the OS once, so that the
	// idle daemon's RSS is what it keeps, not what it once needed.
	debug.FreeOSMemory()
	if id.hub != nil {
		fmt.Fprintf(w, "methodd run: %s is connected to the local hub; call it with: %s\n",
			id.cs.ClientID(), localInvokeHint(f, id.cs.ClientID()))
	}
}

func (c *runCmd) parse(args []string) (runFlags, error) {
	var f runFlags
	fs := newFlagSet("run", runUsage, c.io.err)
	fs.StringVar(&f.config, "config", engine.DefaultConfigPath, "handlers file")
	fs.StringVar(&f.csFile, "connection-string-file", "", "file holding the device connection string")
	fs.BoolVar(&f.local, "local", false, "start a local hub in-process and connect to it")
	fs.StringVar(&f.hubDir, "hub-dir", "", "local hub state directory (default $XDG_STATE_HOME/methodd/hub, else ~/.local/state/methodd/hub)")
	fs.StringVar(&f.device, "device", defaultHubDevice, "identity ID or ID/MODULE to register and use with --local")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", defaultDrainTimeout, "at shutdown, how long running calls may finish")
	fs.DurationVar(&f.sasTTL, "sas-ttl", 0, "SAS token lifetime, overriding connection.sas_ttl (at least 5s; renewed at ~80%)")
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, usageError("run: unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.hubDirSet = f.hubDirSet || fl.Name == "hub-dir" })
	if f.local && f.csFile != "" {
		return f, usageError("run: --local and --connection-string-file exclude each other")
	}
	if !f.local && (f.hubDirSet || f.device != defaultHubDevice) {
		return f, usageError("run: --hub-dir and --device need --local")
	}
	if f.drainTimeout <= 0 {
		return f, usageError("run: --drain-timeout must be positive")
	}
	if f.sasTTL != 0 && f.sasTTL < minSASTTL {
		return f, usageError("run: --sas-ttl must be at least %s", minSASTTL)
	}
	if f.local && f.hubDir == "" {
		dir, err := localhub.DefaultDir(c.io.getenv)
		if err != nil {
			return f, usageError("run: --local: %v; give --hub-dir", err)
		}
		f.hubDir = dir
	}
	return f, nil
}

// load is the start-up half of the reload transaction (loadConfig: the
// permission check, then the same parse as check and reload). Diagnostics
// are printed on w one per line and exit 2; unsafe permissions exit 1.
func (c *runCmd) load(w io.Writer, f runFlags, parse func(string, []byte) (*engine.Set, error), logger *slog.Logger) (*engine.Set, []byte, error) {
	set, data, err := loadConfig(f.config, os.Geteuid(), parse)
	var diags engine.Diagnostics
	switch {
	case errors.As(err, &diags):
		for _, d := range diags {
			fmt.Fprintln(w, d.String())
		}
		return nil, nil, withExit(exitUsage, fmt.Errorf("run: %s: %d problems", f.config, len(diags)))
	case errors.Is(err, confperm.ErrUnsafe):
		return nil, nil, withExit(exitFailure, fmt.Errorf("run: refusing to start: %w", err))
	case err != nil:
		return nil, nil, withExit(exitUsage, fmt.Errorf("run: %w", err))
	}
	for _, d := range set.Warnings() {
		logger.Warn("config warning", "diagnostic", d.String())
	}
	return set, data, nil
}

// session builds the device session that serves eng as identity id.
func (c *runCmd) session(f runFlags, id identity, conn engine.Connection, eng *engine.Engine, calls *callCounter, logger *slog.Logger, onState func(device.State)) (*device.Session, error) {
	ttl := conn.SASTTL
	if f.sasTTL > 0 {
		ttl = f.sasTTL
	}
	sess, err := device.New(device.Config{
		Identity:     id.cs,
		Transport:    id.transport,
		RootCAs:      id.roots,
		ClientCert:   id.cert,
		ProductInfo:  productToken(),
		SASTTL:       ttl,
		DrainTimeout: f.drainTimeout,
		Logger:       logger,
		OnState:      onState,
	}, serve.Handler{Engine: eng, DeviceID: id.cs.DeviceID, ModuleID: id.cs.ModuleID, OnCall: calls.add})
	if err != nil {
		return nil, withExit(exitUsage, fmt.Errorf("run: %w", err))
	}
	return sess, nil
}

// localInvokeHint is the command that calls ping on the local identity.
func localInvokeHint(f runFlags, clientID string) string {
	s := "methodd invoke --local "
	if f.hubDirSet {
		s += "--hub-dir " + shellQuote(f.hubDir) + " "
	}
	return s + clientID + " ping"
}

// guardSIGHUP keeps SIGHUP from killing the daemon (its default action)
// for as long as run lives; the reloader acts on the signal while it runs.
func guardSIGHUP() (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-hup:
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-exited
	}
}
