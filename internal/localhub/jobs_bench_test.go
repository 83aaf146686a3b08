package localhub

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkJobPersist10000 measures one write of a 10,000-device job's
// file (marshal, write, fsync, rename): the cost that makes the engine
// write a running job at most once per jobPersistEvery instead of once per
// device.
func BenchmarkJobPersist10000(b *testing.B) {
	dir := b.TempDir()
	s := &jobs{dir: dir}
	now := time.Now().UTC()
	j := &job{state: jobState{JobID: "bench", Type: jobTypeMethod, Status: jobRunning, QueryCondition: "*",
		CreatedTime: now, StartTime: now, RunTime: now, MaxExecution: 3600,
		Method: &jobMethod{MethodName: "echo", Payload: json.RawMessage(`{"n":1}`), ResponseTimeoutInSeconds: 30}}}
	for i := range 10000 {
		j.state.Devices = append(j.state.Devices, &deviceRecord{DeviceID: fmt.Sprintf("sim-%05d", i), Status: deviceCompleted,
			Created: now, Start: now, End: now, LastUpdated: now, Response: &methodOutcome{Status: 200, Payload: json.RawMessage(`{"n":1}`)}})
	}
	for b.Loop() {
		if err := s.persist(j); err != nil {
			b.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bench.json")); err == nil {
		b.ReportMetric(float64(fi.Size()), "file-bytes")
	}
}
