package engine

import (
	"encoding/json"
	"io"
	"os"
	"testing"
)

// helperEnv makes the test binary act as a command that dumps what it got.
const helperEnv = "ENGINE_TEST_HELPER"

// TestMain lets the test binary double as the helper command of the
// injection tests: with helperEnv=dump it prints its argv, environment and
// stdin as JSON and exits.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "dump" {
		stdin, _ := io.ReadAll(os.Stdin)
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"args": os.Args[1:], "env": os.Environ(), "stdin": string(stdin)})
		os.Exit(0)
	}
	os.Exit(m.Run())
}
