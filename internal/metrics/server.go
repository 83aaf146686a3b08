package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/methodd/methodd/internal/logkey"
)

// Server bounds: a scraper that stalls cannot hold a connection open.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// maxScrapesInFlight scrapes are answered at once; more get 503.
	maxScrapesInFlight = 4
)

// Server answers scrapes of one Registry at /metrics over HTTP; other
// paths are 404.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// Serve listens on addr ("host:port"; ":port" is every interface) and
// answers scrapes of reg until Shutdown. The error of a listen that fails
// names addr. It logs the bound address once at Info. It registers
// promhttp_metric_handler_errors_total on reg (as client_golang's handler
// did), and fails when reg holds it already.
func Serve(addr string, reg *Registry, log *slog.Logger) (*Server, error) {
	h, err := newHandler(reg, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", logkey.Err, err)
		}
	}()
	log.Info("serving metrics", logkey.MetricsURL, "http://"+ln.Addr().String()+"/metrics")
	return s, nil
}

// Addr is the address the server listens on (the port chosen for ":0").
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops listening, lets scrapes in progress finish until ctx is
// done, then closes the rest; it returns once the server has stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	<-s.done
	return err
}
