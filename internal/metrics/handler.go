package metrics

import (
	"log/slog"
	"net/http"

	"github.com/methodd/methodd/internal/logkey"
)

// handler answers a scrape with the text format of its Registry, at most
// maxScrapesInFlight at once.
type handler struct {
	reg      *Registry
	inFlight chan struct{}
	errors   *CounterVec
	log      *slog.Logger
}

// newHandler returns the handler of reg and registers its error counter
// on reg: promhttp_metric_handler_errors_total{cause}, client_golang's
// name, where "encoding" counts scrapes whose body could not be written
// and "gathering" stays 0 (gathering cannot fail).
func newHandler(reg *Registry, log *slog.Logger) (*handler, error) {
	h := &handler{reg: reg, inFlight: make(chan struct{}, maxScrapesInFlight), log: log,
		errors: NewCounterVec("promhttp_metric_handler_errors_total",
			"Total number of internal errors encountered by the promhttp metric handler.", "cause")}
	h.errors.Touch("encoding")
	h.errors.Touch("gathering")
	if err := reg.Register(h.errors); err != nil {
		return nil, err
	}
	return h, nil
}

// ServeHTTP gathers the Registry and writes it; 503 when
// maxScrapesInFlight scrapes are being answered already.
func (h *handler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		http.Error(w, "too many scrapes in flight", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	if err := WriteText(w, h.reg.Gather()); err != nil {
		h.errors.Inc("encoding")
		h.log.Debug("metrics scrape not written", logkey.Err, err)
	}
}
