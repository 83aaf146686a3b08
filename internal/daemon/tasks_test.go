package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
)

// TestReloadKeepsRunningTasks: a task of an async method started before a
// reload of the handlers file is still running after it, is reported by
// the new handlers' taskStatus, and succeeds.
func TestReloadKeepsRunningTasks(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	config := func(v string) string {
		return fmt.Sprintf(`version: 1
methods:
  update:
    async: true
    shell: 'while [ ! -e %s ]; do sleep 0.01; done; echo updated'
  version: {reply: {payload: '"%s"'}}
`, gate, v)
	}
	h := startReloader(t, "", config("A"))
	rid := 0
	call := func(method, payload string) engine.Reply {
		rid++
		return h.eng.Call(context.Background(), engine.Request{Method: method, RequestID: fmt.Sprintf("tasks-%d", rid), Payload: []byte(payload)})
	}
	rep := call("update", "null")
	var started struct{ TaskID, Status string }
	if err := json.Unmarshal(rep.Payload, &started); err != nil || rep.Status != 202 || started.Status != engine.TaskRunning {
		t.Fatalf("update: %d %s", rep.Status, rep.Payload)
	}
	writeConfig(t, h.path, config("B"))
	if r := h.outcome(); r.Outcome != ReloadApplied {
		t.Fatalf("reload: %v (%v)", r.Outcome, r.Err)
	}
	if rep := call("version", "null"); string(rep.Payload) != `"B"` {
		t.Fatalf("after the reload version answers %s, want B's", rep.Payload)
	}
	idPayload := `{"taskId":"` + started.TaskID + `"}`
	var st struct{ Status, Stdout string }
	if rep := call("taskStatus", idPayload); json.Unmarshal(rep.Payload, &st) != nil || st.Status != engine.TaskRunning {
		t.Fatalf("taskStatus after the reload: %d %s, want running", rep.Status, rep.Payload)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, ok := h.eng.Current().WaitTask(ctx, started.TaskID); !ok {
		t.Fatal("the new handlers do not know the task")
	}
	if rep := call("taskStatus", idPayload); json.Unmarshal(rep.Payload, &st) != nil || st.Status != engine.TaskSucceeded || st.Stdout != "updated\n" {
		t.Fatalf("taskStatus at the end: %d %s, want succeeded with the output", rep.Status, rep.Payload)
	}
}

// TestEndToEndAsyncOverREST: through the hub, an async method whose command
// runs longer than its call is answered 202 with a task id, and taskStatus
// (called through the hub as well) follows the task to succeeded with its
// output.
func TestEndToEndAsyncOverREST(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	hub := e2eStartHub(t, false, "gw")
	st := e2eRun(t, fmt.Sprintf(`version: 1
methods:
  update:
    async: true
    timeout: 20m
    shell: 'while [ ! -e %s ]; do sleep 0.01; done; echo "installed $METHODD_DEVICE_ID"'
`, gate), hub.device(t, "gw"), engine.Options{})
	st.waitReady(t, 20*time.Second)
	res, err := hub.rest(t, "gw", "", "update", "null")
	var started struct{ TaskID, Status string }
	if err != nil || json.Unmarshal(res.Payload, &started) != nil || res.Status != 202 || started.Status != engine.TaskRunning {
		t.Fatalf("update through the hub: %+v, %v", res, err)
	}
	idPayload := `{"taskId":"` + started.TaskID + `"}`
	var doc struct{ Status, Stdout string }
	if res, err := hub.rest(t, "gw", "", "taskStatus", idPayload); err != nil || json.Unmarshal(res.Payload, &doc) != nil || doc.Status != engine.TaskRunning {
		t.Fatalf("taskStatus while running: %+v, %v", res, err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for doc.Status == engine.TaskRunning { // each poll is a real call through the hub
		if time.Now().After(deadline) {
			t.Fatal("the task did not end within 30 s")
		}
		res, err := hub.rest(t, "gw", "", "taskStatus", idPayload)
		if err != nil || json.Unmarshal(res.Payload, &doc) != nil {
			t.Fatalf("taskStatus: %+v, %v", res, err)
		}
	}
	if doc.Status != engine.TaskSucceeded || doc.Stdout != "installed gw\n" {
		t.Fatalf("task ended %+v, want succeeded with its output", doc)
	}
}
