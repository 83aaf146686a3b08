package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docBlock is one fenced code block of docs/handlers.md.
type docBlock struct {
	lang string
	line int // line of the opening fence
	body string
}

func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```") && len(line) > 3:
			cur = &docBlock{lang: strings.TrimPrefix(line, "```"), line: i + 1}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	return blocks
}

// shellWords splits a command line with single-quoted words.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// docCall runs one "methodd call" line against s and renders the reply as
// methodd call prints it: one line, and for an async method a second one,
// the task's final status.
func docCall(t *testing.T, s *Set, words []string) []string {
	t.Helper()
	r := Request{DeviceID: "local", RequestID: "1"}
	var rest []string
	for i := 0; i < len(words); i++ {
		switch words[i] {
		case "--config":
			i++
		case "--device-id":
			i++
			r.DeviceID = words[i]
		case "--request-id":
			i++
			r.RequestID = words[i]
		case "--module-id":
			i++
			r.ModuleID = words[i]
		default:
			rest = append(rest, words[i])
		}
	}
	r.Method = rest[0]
	if len(rest) > 1 {
		r.Payload = []byte(rest[1])
	}
	rep := s.Call(context.Background(), r)
	lines := []string{renderReply(t, rep)}
	var task struct {
		TaskID string `json:"taskId"`
	}
	if _ = json.Unmarshal(rep.Payload, &task); rep.Status == 202 && task.TaskID != "" {
		final, ok := s.WaitTask(context.Background(), task.TaskID)
		if !ok {
			t.Fatalf("task %s unknown", task.TaskID)
		}
		lines = append(lines, renderReply(t, final))
	}
	return lines
}

// renderReply is one reply as methodd call prints it.
func renderReply(t *testing.T, rep Reply) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"status":%d,"payload":`, rep.Status)
	if err := json.Compact(&b, rep.Payload); err != nil {
		t.Fatal(err)
	}
	b.WriteString("}")
	return b.String()
}

// TestDocsExamples loads every yaml block of docs/handlers.md and runs every
// "$ methodd call" line of the console blocks that follow it; "$ methodd
// check" output lines must be lines of the invalid-file goldens.
func TestDocsExamples(t *testing.T) {
	goldens, _ := filepath.Glob("testdata/invalid/*.golden")
	var golden []string
	for _, g := range goldens {
		b, _ := os.ReadFile(g)
		for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			golden = append(golden, "handlers.yaml:"+l[strings.Index(l, ".yaml:")+len(".yaml:"):])
		}
	}
	var s *Set
	calls := 0
	for _, b := range docBlocks(t, "../docs/handlers.md") {
		switch b.lang {
		case "yaml":
			if strings.Contains(b.body, "run_as:") && os.Geteuid() != 0 {
				t.Logf("docs/handlers.md:%d: not loaded: run_as needs a daemon that may switch users (this test runs as uid %d)", b.line, os.Geteuid())
				s = nil
				continue
			}
			var err error
			opts := testOptions()
			ids := 0
			opts.NewTaskID = func() string { ids++; return fmt.Sprintf("%032x", ids) } // predictable task ids
			if s, err = Parse(filepath.Join(t.TempDir(), "handlers.yaml"), []byte(b.body), opts); err != nil {
				t.Fatalf("docs/handlers.md:%d: example does not load:\n%v", b.line, err)
			}
			if w := s.Warnings(); len(w) > 0 {
				t.Errorf("docs/handlers.md:%d: example has warnings:\n%v", b.line, w)
			}
		case "console":
			lines := strings.Split(strings.TrimSpace(b.body), "\n")
			for i := 0; i < len(lines); i++ {
				cmd, ok := strings.CutPrefix(lines[i], "$ methodd ")
				if !ok {
					continue
				}
				words := shellWords(cmd)
				if words[0] == "check" {
					for i+1 < len(lines) && !strings.HasPrefix(lines[i+1], "$ ") {
						i++
						if !contains(golden, lines[i]) {
							t.Errorf("docs/handlers.md: check output %q is not in any golden file", lines[i])
						}
					}
					continue
				}
				if s == nil || i+1 >= len(lines) {
					t.Fatalf("docs/handlers.md:%d: call without a preceding yaml block or output", b.line)
				}
				calls++
				for _, got := range docCall(t, s, words[1:]) {
					i++
					if i >= len(lines) || got != lines[i] {
						t.Errorf("docs/handlers.md:%d: %s\ngot  %s\nwant %s", b.line, cmd, got, lines[min(i, len(lines)-1)])
					}
				}
			}
		}
	}
	if calls < 10 {
		t.Errorf("only %d documented calls ran; the extractor is broken", calls)
	}
}
