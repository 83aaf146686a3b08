package localhub

import (
	"encoding/json"
	"fmt"

	"github.com/methodd/methodd/internal/twinquery"
)

// deviceJobRecords returns the per-device job records (fleet reference
// §4.5) that c matches (nil: all), for queries FROM devices.jobs: the
// records of every job, jobs oldest first, each job's devices in id order.
// c is evaluated on each record as its JSON document (decoded with
// UseNumber), where the query's devices.jobs.X reads the record's X.
func (h *Hub) deviceJobRecords(c *twinquery.Condition) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for _, j := range h.jobs.all() {
		for _, rec := range j.deviceJobs() {
			b, err := json.Marshal(rec)
			if err != nil {
				return nil, fmt.Errorf("job %s: %w", rec.JobID, err)
			}
			if c != nil {
				doc, err := decodeDocument(b)
				if err != nil {
					return nil, fmt.Errorf("job %s: %w", rec.JobID, err)
				}
				if !c.Match(doc) {
					continue
				}
			}
			out = append(out, b)
		}
	}
	return out, nil
}
