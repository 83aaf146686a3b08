package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// completionScript runs `methodd completion SHELL` and returns its stdout.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := Run(context.Background(), []string{"completion", shell}, env); code != exitOK {
		t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errb.String())
	}
	return out.String()
}

// helpFlags runs `methodd PATH... -h` and reads the flag names from the
// -h text (independently of the recorder completion uses): name -> whether
// it takes a value (PrintDefaults shows a value name after it).
func helpFlags(t *testing.T, path ...string) map[string]bool {
	t.Helper()
	var errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := Run(context.Background(), append(path, "-h"), env); code != exitOK {
		t.Fatalf("%v -h: exit %d", path, code)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)( \w+)?$`).FindAllStringSubmatch(errb.String(), -1) {
		names[m[1]] = m[2] != ""
	}
	return names
}

// TestCompletionCoversEveryFlag: for every command of the dispatch table
// (and every subcommand of job, twin and completion), every flag its -h
// lists appears in each shell's script, as do the command names.
func TestCompletionCoversEveryFlag(t *testing.T) {
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		scripts[sh] = completionScript(t, sh)
	}
	total := 0
	for name, info := range commands() {
		paths := [][]string{{name}}
		if p, ok := info.make(Env{}).(parentCommand); ok {
			paths = nil
			for _, sub := range p.subcommands() {
				paths = append(paths, []string{name, sub})
			}
		}
		for _, path := range paths {
			for fl, takesValue := range helpFlags(t, path...) {
				total++
				dash := "--" + fl
				if len(fl) == 1 {
					dash = "-" + fl
				}
				leaf := strings.Join(path, " ")
				wants := map[string]string{
					"bash": "'" + leaf + "/" + fl + "'",
					"zsh":  dash + "=[",
					"fish": "-n '__methodd_is " + leaf + "' -",
				}
				if !regexp.MustCompile(`(?m)^    '` + regexp.QuoteMeta(leaf) + `'\)\n.*compgen -W '[^']*` + regexp.QuoteMeta(dash) + `\b`).MatchString(scripts["bash"]) {
					t.Errorf("bash: %s has no %s in its flag list", leaf, dash)
				}
				if takesValue != strings.Contains(scripts["bash"], wants["bash"]) {
					t.Errorf("bash: %s %s takes a value: %v, but its value completion is missing or extra", leaf, dash, takesValue)
				}
				if !strings.Contains(scripts["zsh"], dash) || !strings.Contains(scripts["zsh"], "'"+leaf+"')") {
					t.Errorf("zsh: %s %s missing", leaf, dash)
				}
				opt := "-l '" + fl + "'"
				if len(fl) == 1 {
					opt = "-s '" + fl + "'"
				}
				if !strings.Contains(scripts["fish"], "-n '__methodd_is "+leaf+"' "+opt) {
					t.Errorf("fish: %s %s missing", leaf, dash)
				}
			}
		}
		for sh, s := range scripts {
			if !strings.Contains(s, "'"+name) {
				t.Errorf("%s: command %s missing", sh, name)
			}
		}
	}
	if total < 50 {
		t.Fatalf("saw %d flags in all; the -h parsing broke", total)
	}
}

// completionSetup writes the shell's script to DIR/name (a temporary DIR)
// and makes DIR/work, the directory completions run in, holding a file
// handlers.yaml and a directory hub.
func completionSetup(t *testing.T, shell, name string) (dir, script, work string) {
	t.Helper()
	dir = t.TempDir()
	script = filepath.Join(dir, name)
	work = filepath.Join(dir, "work")
	for _, d := range []string{filepath.Dir(script), filepath.Join(work, "hub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(script, []byte(completionScript(t, shell)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "handlers.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, script, work
}

// TestCompletionBashSyntax: bash -n accepts the bash script; zsh -n and
// fish -n the others when those shells are installed.
func TestCompletionBashSyntax(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			bin, err := exec.LookPath(sh)
			if err != nil {
				t.Skipf("%s is not installed", sh)
			}
			file := filepath.Join(t.TempDir(), "methodd."+sh)
			if err := os.WriteFile(file, []byte(completionScript(t, sh)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
		})
	}
}

// TestCompletionBash runs the bash completion function as bash would, with
// COMP_WORDS and COMP_CWORD set, and checks COMPREPLY exactly.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	_, script, work := completionSetup(t, "bash", "methodd.bash")
	cases := []struct {
		words []string // the last one is the word being completed
		want  string   // COMPREPLY, one per line
	}{
		{[]string{"inv"}, "invoke"},
		{[]string{""}, "call check completion hub invoke job query run simulate twin version"},
		{[]string{"run", "--con"}, "--config --connection-string-file"},
		{[]string{"run", "--log-level", ""}, "debug info warn error"},
		{[]string{"run", "--log-level", "=", "w"}, "warn"},
		{[]string{"run", "-log-format", "="}, "text json"},
		{[]string{"run", "--device", ""}, ""},
		{[]string{"run", "--local", "--sa"}, "--sas-ttl"},
		{[]string{"job", ""}, "cancel create list results show"},
		{[]string{"job", "list", "--status", "c"}, "completed cancelled"},
		{[]string{"job", "create", "--w"}, "--wait --where"},
		{[]string{"twin", "update", "gw", "--e"}, "--etag"},
		{[]string{"invoke", "-o", "p"}, "pretty payload"},
		{[]string{"twin", "show", "-o", ""}, "json pretty"},
		{[]string{"check", "--format", ""}, "text json"},
		{[]string{"completion", "z"}, "zsh"},
		{[]string{"run", "--config", "h"}, "handlers.yaml hub"},
		{[]string{"hub", "--dir", "h"}, "hub"},
		{[]string{"invoke", "--hub-dir", "="}, "hub"},
	}
	for _, c := range cases {
		words := append([]string{"methodd"}, c.words...)
		var q []string
		for _, w := range words {
			q = append(q, bashQuote(w))
		}
		prog := "cd " + bashQuote(work) + " && source " + bashQuote(script) + " && COMP_WORDS=(" + strings.Join(q, " ") +
			") && COMP_CWORD=" + strconv.Itoa(len(words)-1) + `; _methodd; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Errorf("%v: %v\n%s", words, err, out)
			continue
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != c.want {
			t.Errorf("complete %q: got %q, want %q", strings.Join(words, " "), got, c.want)
		}
	}
}

// TestCompletionFish: the fish script, sourced by a real fish, offers what
// `complete -C` is asked for (candidates sorted, descriptions dropped).
func TestCompletionFish(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish is not installed (scripts/test.sh installs it)")
	}
	_, script, work := completionSetup(t, "fish", "methodd.fish")
	cases := []struct{ line, want string }{
		{"methodd inv", "invoke"},
		{"methodd ", "call check completion hub invoke job query run simulate twin version"},
		{"methodd run --con", "--config --connection-string-file"},
		{"methodd run --log-level ", "debug error info warn"},
		{"methodd run --log-level=w", "--log-level=warn"},
		{"methodd job ", "cancel create list results show"},
		{"methodd job list --status c", "cancelled completed"},
		{"methodd job create --w", "--wait --where"},
		{"methodd twin update gw --e", "--etag"},
		{"methodd invoke -o p", "payload pretty"},
		{"methodd twin show -o ", "json pretty"},
		{"methodd check --format ", "json text"},
		{"methodd completion z", "zsh"},
		{"methodd run --config h", "handlers.yaml hub/"},
		{"methodd hub --dir h", "hub/"},
	}
	for _, c := range cases {
		cmd := exec.Command(fish, "--no-config", "-c", "source "+bashQuote(script)+"; complete -C "+bashQuote(c.line))
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%q: %v\n%s", c.line, err, out)
			continue
		}
		var got []string
		for l := range strings.Lines(string(out)) {
			cand, _, _ := strings.Cut(strings.TrimRight(l, "\n"), "\t")
			got = append(got, cand)
		}
		slices.Sort(got)
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("complete %q: got %q, want %q", c.line, g, c.want)
		}
	}
}

// TestCompletionZsh: the zsh script, installed in fpath and loaded by
// compinit in a real interactive zsh (in a pseudo-terminal), offers what a
// TAB asks for.
func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh is not installed (scripts/test.sh installs it)")
	}
	capture, err := filepath.Abs(filepath.Join("testdata", "zsh_capture.zsh"))
	if err != nil {
		t.Fatal(err)
	}
	dir, script, work := completionSetup(t, "zsh", filepath.Join("fpath", "_methodd"))
	fpath := filepath.Dir(script)
	cases := []struct{ line, want string }{
		{"methodd inv", "invoke"},
		{"methodd ", "call check completion hub invoke job query run simulate twin version"},
		{"methodd run --con", "--config --connection-string-file"},
		{"methodd run --log-level ", "debug error info warn"},
		{"methodd job ", "cancel create list results show"},
		{"methodd job list --status c", "cancelled completed"},
		{"methodd job create --w", "--wait --where"},
		{"methodd twin update gw --e", "--etag"},
		{"methodd invoke -o p", "payload pretty"},
		{"methodd check --format ", "json text"},
		{"methodd completion z", "zsh"},
		{"methodd run --config h", "handlers.yaml hub"},
	}
	for _, c := range cases {
		// A hang guard only: zsh answers in milliseconds.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, zsh, "-f", capture, fpath, c.line)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Errorf("%q: %v\n%s", c.line, err, out)
			continue
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("complete %q: got %q, want %q", c.line, g, c.want)
		}
	}
}

// TestCompletionUsage: no shell or an unknown one exits 2 with nothing on
// stdout.
func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		var out bytes.Buffer
		env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
		if code := Run(context.Background(), args, env); code != exitUsage || out.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %d bytes; want exit %d, nothing", args, code, out.Len(), exitUsage)
		}
	}
}
