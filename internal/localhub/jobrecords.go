package localhub

import (
	"cmp"
	"fmt"
	"slices"

	"encoding/json"

	"github.com/methodd/methodd/internal/twinquery"
)

// deviceJobRecords returns the per-device job records (fleet reference
// §4.5) of every job that c matches (nil: all), for queries FROM
// devices.jobs: ordered by device id, then job id, the first limit after
// the key after (device id, NUL, job id; "" from the first; limit < 0: all). Keys are
// compared before anything is rendered, so a page costs its own records'
// encoding and matching, not every record's: reading 10,000 records page
// by page stays linear.
func (h *Hub) deviceJobRecords(c *twinquery.Condition, after string, limit int) ([]queryItem, error) {
	type keyed struct {
		key string
		rec deviceJob
	}
	var all []keyed
	for _, j := range h.jobs.all() {
		for _, rec := range j.deviceJobs() {
			all = append(all, keyed{rec.DeviceID + "\x00" + rec.JobID, rec})
		}
	}
	slices.SortStableFunc(all, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	start, _ := slices.BinarySearchFunc(all, after, func(k keyed, t string) int {
		if k.key <= t {
			return -1
		}
		return 1
	})
	if after == "" {
		start = 0
	}
	var out []queryItem
	for _, k := range all[start:] {
		b, err := json.Marshal(k.rec)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", k.rec.JobID, err)
		}
		if c != nil {
			doc, err := decodeDocument(b)
			if err != nil {
				return nil, fmt.Errorf("job %s: %w", k.rec.JobID, err)
			}
			if !c.Match(doc) {
				continue
			}
		}
		if out = append(out, queryItem{key: k.key, doc: b}); len(out) == limit {
			break
		}
	}
	return out, nil
}
