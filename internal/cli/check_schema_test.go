package cli

import (
	"encoding/json"
	"testing"

	"github.com/methodd/methodd/engine"
)

// TestCheckPrintSchema: check --print-schema prints the embedded schema,
// JSON that editors can load, and exits 0; with a FILE it is a usage error.
func TestCheckPrintSchema(t *testing.T) {
	out, errOut, code := runCLI(t, "", "check", "--print-schema")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, errOut)
	}
	if out != string(engine.Schema()) {
		t.Errorf("stdout is not engine.Schema() (%d bytes, want %d)", len(out), len(engine.Schema()))
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v", err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema %v, want draft 2020-12", doc["$schema"])
	}
	out, _, code = runCLI(t, "", "check", "--print-schema", example)
	if code != 2 || out != "" {
		t.Errorf("with a FILE: exit %d, stdout %q; want 2 (usage) and nothing", code, out)
	}
}
