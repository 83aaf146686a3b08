package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

const completionUsage = `usage: methodd completion bash|zsh|fish

Prints a completion script for the shell on standard output, generated from
the commands and their flags: commands, subcommands, flags, file names for
file flags, directories for directory flags, and the values of flags whose
usage lists them ("log level: debug, info, warn or error").

The Debian package installs them; by hand:
  methodd completion bash > /usr/share/bash-completion/completions/methodd
  methodd completion zsh > /usr/share/zsh/vendor-completions/_methodd
  methodd completion fish > /usr/share/fish/vendor_completions.d/methodd.fish

examples:
  source <(methodd completion bash)
  methodd completion fish | source`

// completionCmd implements `methodd completion`.
type completionCmd struct{ env Env }

// completionShells maps a shell to its script generator.
func completionShells() map[string]func([]compCommand) string {
	return map[string]func([]compCommand) string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
}

// subcommands names the shells (completion completes its own argument).
func (c *completionCmd) subcommands() []string {
	return slices.Sorted(maps.Keys(completionShells()))
}

// Run prints the script for the one shell argument; no shell or an unknown
// one is a usage error.
func (c *completionCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("completion", completionUsage, c.env.Stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("completion: want one shell: %s", strings.Join(c.subcommands(), ", "))
	}
	gen, ok := completionShells()[pos[0]]
	if !ok {
		return usageError("completion: unknown shell %q: want %s", pos[0], strings.Join(c.subcommands(), ", "))
	}
	spec, err := completionSpec(ctx)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(c.env.Stdout, gen(spec)); err != nil {
		return fmt.Errorf("completion: %w", err)
	}
	return nil
}

// parentCommand is a command whose first argument is a subcommand.
type parentCommand interface {
	subcommands() []string
}

// compCommand is what a script completes for one command: its flags, or
// its subcommands (each with its own flags).
type compCommand struct {
	name, summary string
	flags         []compFlag
	subs          []compCommand
}

// completionSpec builds the model of every command of the dispatch table,
// sorted by name, reading each flag set as the command itself defines it.
func completionSpec(ctx context.Context) ([]compCommand, error) {
	cmds := commands()
	var out []compCommand
	for _, name := range slices.Sorted(maps.Keys(cmds)) {
		info := cmds[name]
		cc := compCommand{name: name, summary: info.summary}
		if p, ok := info.make(Env{}).(parentCommand); ok {
			for _, sub := range p.subcommands() {
				fs, err := commandFlags(ctx, info.make, name, sub)
				if err != nil {
					return nil, err
				}
				cc.subs = append(cc.subs, compCommand{name: sub, flags: compFlags(fs)})
			}
		} else {
			fs, err := commandFlags(ctx, info.make, name)
			if err != nil {
				return nil, err
			}
			cc.flags = compFlags(fs)
		}
		out = append(out, cc)
	}
	return out, nil
}

// commandFlags runs the command (path after the command's name) with -h on
// an Env whose Stderr is a flagRecorder, on a cancelled context, and
// returns the one flag set it parsed. A command that does not stop at -h
// with exactly one flag set is an error: completion must not guess.
func commandFlags(ctx context.Context, mk func(Env) command, name string, path ...string) (*flag.FlagSet, error) {
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	rec := &flagRecorder{}
	env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: rec, Getenv: func(string) string { return "" }}
	err := mk(env).Run(ctx, append(path, "-h"))
	if !errors.Is(err, flag.ErrHelp) || len(rec.sets) != 1 {
		//nolint:errorlint // err may be flag.ErrHelp, which exitCode maps to success; this error must not match it.
		return nil, fmt.Errorf("completion: %s: -h made %d flag sets and returned %v; want one and flag.ErrHelp",
			strings.Join(append([]string{name}, path...), " "), len(rec.sets), err)
	}
	return rec.sets[0], nil
}
