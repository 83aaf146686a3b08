package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
)

const runUsage = `usage: methodd run [--config FILE] [--connection-string-file FILE] [--local [--hub-dir DIR] [--device ID[/MODULE]]]
                   [--log-format text|json] [--log-level LEVEL] [--drain-timeout D]

Connect this gateway to IoT Hub over MQTT and answer every direct method from
the handlers file, until SIGINT/SIGTERM; then stop taking calls, let running
ones finish (at most --drain-timeout) and exit 0.

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

// defaultDrainTimeout bounds the wait for running calls at shutdown.
const defaultDrainTimeout = 10 * time.Second

// runCmd implements `methodd run`.
type runCmd struct{ io stdio }

// runFlags are the parsed flags of `methodd run`.
type runFlags struct {
	config, hubDir, device, csFile string
	local, hubDirSet               bool
	logFormat, logLevel            string
	drainTimeout                   time.Duration
}

// Run loads the handlers, resolves the identity (or starts the local hub),
// and runs the device session until ctx is done. An invalid config prints
// its diagnostics and exits 2.
func (c *runCmd) Run(ctx context.Context, args []string) error {
	f, err := c.parse(args)
	if err != nil {
		return err
	}
	logger, err := newLogger(c.io.err, "run", f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	eng, set, err := c.load(f, logger)
	if err != nil {
		return err
	}
	id, err := resolveIdentity(ctx, f, set.Connection(), c.io.getenv, logger)
	if err != nil {
		return err
	}
	if id.hub != nil {
		defer id.hub.Close()
	}
	sess, err := c.session(f, id, set.Connection(), eng, logger)
	if err != nil {
		return err
	}
	// Hot reload (a later issue) plugs in here: a reloader that swaps eng's
	// Set on file changes and SIGHUP. Until then SIGHUP is logged and
	// ignored, never fatal (its default action would kill the daemon).
	stopHUP := ignoreSIGHUP(logger)
	defer stopHUP()
	logger.Info("starting", "config", f.config, "methods", len(set.Methods()), "identity", id.cs.ClientID(),
		"identitySource", id.source, "host", id.cs.HostName, "dial", id.cs.DialHost())
	if err := sess.Run(ctx); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	logger.Info("stopped")
	return nil
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
	if f.local && f.hubDir == "" {
		dir, err := localhub.DefaultDir(c.io.getenv)
		if err != nil {
			return f, usageError("run: --local: %v; give --hub-dir", err)
		}
		f.hubDir = dir
	}
	return f, nil
}

// load checks the config's permissions and loads it: the same load path as
// check. Problems are printed one per line and exit 2.
func (c *runCmd) load(f runFlags, logger *slog.Logger) (*engine.Engine, *engine.Set, error) {
	set, err := engine.Load(f.config, engine.Options{Logger: logger.With("component", "engine")})
	var diags engine.Diagnostics
	switch {
	case errors.As(err, &diags):
		for _, d := range diags {
			fmt.Fprintln(c.io.err, d.String())
		}
		return nil, nil, withExit(exitUsage, fmt.Errorf("run: %s: %d problems", f.config, len(diags)))
	case err != nil:
		return nil, nil, withExit(exitUsage, fmt.Errorf("run: %w", err))
	}
	if err := confperm.Check(f.config, os.Geteuid()); err != nil {
		return nil, nil, withExit(exitUsage, fmt.Errorf("run: %w", err))
	}
	for _, d := range set.Warnings() {
		logger.Warn("config warning", "diagnostic", d.String())
	}
	return engine.New(set), set, nil
}

// session builds the device session that serves eng as identity id.
func (c *runCmd) session(f runFlags, id identity, conn engine.Connection, eng *engine.Engine, logger *slog.Logger) (*device.Session, error) {
	started := false
	onState := func(s device.State) {
		if s.Kind != device.Connected || started {
			return
		}
		started = true
		// Start-up is over: hand its garbage (YAML nodes, expression
		// compilation, certificate parsing) back to the OS once, so that the
		// idle daemon's RSS is what it keeps, not what it once needed.
		debug.FreeOSMemory()
		if id.hub != nil {
			fmt.Fprintf(c.io.err, "methodd run: %s is connected to the local hub; call it with: %s\n",
				id.cs.ClientID(), localInvokeHint(f, id.cs.ClientID()))
		}
	}
	sess, err := device.New(device.Config{
		Identity:     id.cs,
		Transport:    id.transport,
		RootCAs:      id.roots,
		ClientCert:   id.cert,
		ProductInfo:  "methodd/" + moduleVersion(),
		SASTTL:       conn.SASTTL,
		DrainTimeout: f.drainTimeout,
		Logger:       logger,
		OnState:      onState,
	}, engineHandler{eng: eng, deviceID: id.cs.DeviceID, moduleID: id.cs.ModuleID})
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

// ignoreSIGHUP keeps SIGHUP from killing the daemon until reload exists.
func ignoreSIGHUP(logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-hup:
				logger.Warn("SIGHUP received; config reload is not available yet, ignoring")
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
