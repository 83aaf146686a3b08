package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/methodd/methodd/internal/daemon"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/metrics"
)

// metricsShutdownGrace bounds the wait for scrapes in progress at exit.
const metricsShutdownGrace = 5 * time.Second

// checkMetricsAddr accepts "" (no metrics) or a host:port for
// --metrics-addr; ":9464" (every interface) is allowed, as the operator
// asked for it.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usageError("run: --metrics-addr %q: want HOST:PORT (127.0.0.1:9464, or :9464 for every interface)", addr)
	}
	return nil
}

// startMetrics serves the daemon's metrics on addr, unless addr is "": it
// returns the Observer to give the daemon (nil without metrics) and the
// function that stops the server, to call once the daemon has returned.
// An address that cannot be listened on is an error (exit 1).
func startMetrics(addr string, log *slog.Logger) (daemon.Observer, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	e, err := metrics.Start(addr, moduleVersion(), log.With(logkey.Component, "metrics"))
	if err != nil {
		return nil, nil, withExit(exitFailure, fmt.Errorf("run: --metrics-addr: %w", err))
	}
	return e, func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownGrace)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			log.Warn("metrics server did not stop cleanly", logkey.Err, err)
		}
	}, nil
}
