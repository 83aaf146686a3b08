package localhub

import (
	"encoding/json"

	"github.com/methodd/methodd/internal/twinquery"
)

// JobRecords exposes the devices.jobs query source to the package's
// external tests: the records the WHERE of query (a FROM devices.jobs
// query) selects, ordered by device id, then job id.
func (h *Hub) JobRecords(query string) ([]json.RawMessage, error) {
	q, err := twinquery.Parse(query)
	if err != nil {
		return nil, err
	}
	items, err := h.deviceJobRecords(q.Where(), "", -1)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		out[i] = it.doc
	}
	return out, nil
}

// SetJobWorkers sets how many devices a job runs at once (jobWorkers by
// default), for tests that need devices to wait their turn. Call it before
// creating jobs.
func (h *Hub) SetJobWorkers(n int) {
	h.jobs.mu.Lock()
	defer h.jobs.mu.Unlock()
	h.jobs.workers = n
}
