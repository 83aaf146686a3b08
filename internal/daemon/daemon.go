// Package daemon is what `methodd run` is once its inputs are resolved: a
// device session answering every direct method from a handlers file, kept
// connected, reloaded when the file changes or a reload is asked for, and
// reported to systemd (design §3).
//
// Unless the handlers file sets connection.twin: false, the daemon also
// reports its state — version, config digest, methods, last reload — in
// the "methodd" section of the device twin's reported properties, at every
// connection that is not a token renewal and after every reload (design §5).
//
// Run owns every goroutine it starts and returns when they have all ended.
// It is the only writer to systemd's notify socket, the one engine↔device
// adapter, and where the memory policy lives. It never touches process
// signals: the `run` command turns SIGHUP into a value on Config.Reload, and
// tests send on that channel instead. The benchmark and the test suites run
// the daemon through Run, so that what they measure and judge is what ships.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/sdnotify"
)

// Config is a daemon with its inputs resolved. Path, Loaded and
// Device.Identity are required (Device.Identity may be empty when
// Device.Reidentify provides it); every other zero field is a no-op or a
// default.
type Config struct {
	// Path is the handlers file as given (--config): it is watched for
	// changes, and diagnostics name it.
	Path string
	// Loaded is the start-up load of Path (handlersfile.Load with the
	// options in Load). Its Set serves first; a later content identical to
	// its Data is not reloaded. It must be safe (Unsafe nil).
	Loaded handlersfile.Loaded
	// Load are the options of every reload, the same as start-up's.
	Load handlersfile.Options
	// Device is the session: identity, transport, roots, client
	// certificate, product info, SAS TTL, drain timeout. Run sets its
	// Logger and OnState.
	Device device.Config
	// IdentitySource says where Device.Identity came from, for the log;
	// never the identity's secret.
	IdentitySource string
	// Reload: each value received asks for a reload of Path, applied even
	// when its content is unchanged (`methodd run` sends one per SIGHUP).
	// nil: file changes only.
	Reload <-chan struct{}
	// Getenv reads systemd's NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID,
	// and GOGC (an operator's GOGC wins over the daemon's default). nil:
	// an empty environment.
	Getenv func(string) string
	// Logger receives the daemon's, the session's and the reloader's lines.
	// nil discards.
	Logger *slog.Logger
	// Now stamps reload results and drives the health deadline. nil is
	// time.Now.
	Now func() time.Time
	// Debounce is the quiet time after a file change before it is read
	// (watch.DefaultDebounce when zero).
	Debounce time.Duration
	// OnReady runs once, when the session first connected and subscribed,
	// before READY=1 is sent.
	OnReady func()
	// OnReload receives the outcome of every reload and of every check of
	// the file that found it unchanged, after systemd and Observer have
	// been told.
	OnReload func(ReloadResult)
	// OnState receives every device session state change, after systemd
	// and Observer have been told. It must not block.
	OnState func(device.State)
	// Version is the daemon's version as reported in the device twin
	// (what `methodd version` prints: the module version from the build
	// information). Empty reports "(devel)".
	Version string
	// OnTwinReport receives every attempt to report the daemon's state in
	// the device twin's reported properties, from the reporter's goroutine,
	// after the attempt and before the next one; it must not block. It is
	// never called when the handlers file sets connection.twin: false, nor
	// after Run returns.
	OnTwinReport func(TwinReport)
	// Observer is told of every call, connection change and reload, for
	// metrics. nil: nobody is.
	Observer Observer
}

// ErrUnsafe is returned by Run for a Config whose Loaded.Unsafe is set.
var ErrUnsafe = errors.New("daemon: refusing an unsafe handlers file")

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Path == "" || c.Loaded.Set == nil:
		return c, errors.New("daemon: Config.Path and Config.Loaded are required")
	case c.Loaded.Unsafe != nil:
		return c, fmt.Errorf("%w: %w", ErrUnsafe, c.Loaded.Unsafe)
	}
	if c.Getenv == nil {
		c.Getenv = func(string) string { return "" }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OnReady == nil {
		c.OnReady = func() {}
	}
	if c.OnState == nil {
		c.OnState = func(device.State) {}
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	return c, nil
}

// Run serves cfg until ctx is done: it connects, answers every call,
// reloads the handlers file and keeps systemd informed; then it stops
// taking calls, lets the running ones finish (Device.DrainTimeout), kills
// the running tasks of async methods and returns nil. It returns an error, before connecting, for an invalid
// Config or a handlers file whose directory cannot be watched. A file that
// cannot be watched later is logged, and changes then apply only at
// restart.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger
	defer setGCPercent(cfg.Getenv)()
	eng := engine.New(cfg.Loaded.Set)
	id := cfg.Device.Identity
	sd := newSystemd(sdnotify.New(cfg.Getenv), log, id.ClientID(), describe(cfg.Loaded.Set), cfg.Now, func() {
		// Start-up is over: hand its garbage (YAML nodes, expression
		// compilation, certificate parsing) back to the OS once, so that
		// the idle daemon's RSS is what it keeps, not what it once needed.
		debug.FreeOSMemory()
		cfg.OnReady()
	})
	cfg.Observer.TasksRunning(eng.RunningTasks)
	cfg.Observer.Reloaded(true, cfg.Loaded.Set.LoadedAt())
	observe := &sessionObserver{obs: cfg.Observer}
	calls := new(callCounter)
	twin := twinReporterOf(&cfg, eng, log) // nil with connection.twin: false
	var sess *device.Session               // set before it runs: the closures below read it
	dev := cfg.Device
	dev.Logger = log
	dev.OnState = func(st device.State) {
		if st.Kind == device.Connected {
			sd.setIdentity(sess.Identity().ClientID())
		}
		sd.onState(st)
		observe.onState(st)
		if twin != nil {
			twin.onState(st)
		}
		cfg.OnState(st)
	}
	sess, err = device.New(dev, handler{eng: eng, onCall: calls.add, obs: cfg.Observer, who: func() (string, string) {
		id := sess.Identity()
		return id.DeviceID, id.ModuleID
	}})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	rl, err := newReloader(cfg, cfg.Loaded.Data, eng, sd, log)
	if err != nil {
		return fmt.Errorf("daemon: watch %s: %w", cfg.Path, err)
	}
	attrs := []any{logkey.File, cfg.Path, logkey.Methods, len(cfg.Loaded.Set.Methods()), logkey.Source, cfg.IdentitySource}
	if id.DeviceID != "" { // otherwise the session logs the identity it gets
		attrs = append(attrs, logkey.Identity, id.ClientID(), logkey.Host, id.HostName, logkey.Dial, id.DialHost())
	}
	log.Info("starting", attrs...)
	watchdog, _ := sdnotify.WatchdogInterval(cfg.Getenv, os.Getpid())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := rl.run(ctx, cfg.Reload); err != nil {
			log.Error("config watch failed; changes now apply only at restart", logkey.Err, err)
		}
	})
	wg.Go(func() { sd.watchdog(ctx, watchdog) })
	wg.Go(func() { trimWhenIdle(ctx, calls, idleTrimEvery, returnMemory) })
	if twin != nil {
		wg.Go(func() { twin.run(ctx, sess) })
	}
	wg.Go(func() {
		<-ctx.Done()
		sd.stopping()
	})
	err = sess.Run(ctx)
	wg.Wait()
	stopTasks(eng, cfg.Device.DrainTimeout, log)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	log.Info("stopped")
	return nil
}

// stopTasks kills the running tasks of async methods (their process groups,
// as at a timeout) and waits for them, bounded by the drain timeout plus
// the engine's kill grace: a task never outlives the daemon.
func stopTasks(eng *engine.Engine, drain time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), drain+engine.DefaultKillGrace+time.Second)
	defer cancel()
	if err := eng.Close(ctx); err != nil {
		log.Error("running tasks did not end in time", logkey.Err, err)
	}
}
