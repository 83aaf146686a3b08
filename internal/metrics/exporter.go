package metrics

import (
	"context"
	"log/slog"
	"net"
)

// Exporter is one daemon's Metrics on a Registry of their own, served over
// HTTP: what `methodd run --metrics-addr` starts. It implements
// daemon.Observer through Metrics.
type Exporter struct {
	*Metrics
	server *Server
}

// Start registers a daemon's metrics (New, with version) on a new Registry
// and serves it on addr (Serve). It fails when addr cannot be listened on.
func Start(addr, version string, log *slog.Logger) (*Exporter, error) {
	reg := NewRegistry()
	m, err := New(reg, version)
	if err != nil {
		return nil, err
	}
	srv, err := Serve(addr, reg, log)
	if err != nil {
		return nil, err
	}
	return &Exporter{Metrics: m, server: srv}, nil
}

// Addr is the address scrapes go to.
func (e *Exporter) Addr() net.Addr { return e.server.Addr() }

// Shutdown stops the server (Server.Shutdown).
func (e *Exporter) Shutdown(ctx context.Context) error { return e.server.Shutdown(ctx) }
