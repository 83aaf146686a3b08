package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// command is one subcommand: it parses its own flags from args and returns
// an error; only Run turns that error into an exit code.
type command interface {
	Run(ctx context.Context, args []string) error
}

// commandInfo is one row of the static dispatch table.
type commandInfo struct {
	summary string
	make    func(Env) command
}

// commands is the dispatch table. It is built by a function, not kept in a
// package variable, so that nothing in the package is mutable state.
func commands() map[string]commandInfo {
	return map[string]commandInfo{
		"run":        {"answer direct methods from handlers.yaml (the device daemon)", func(e Env) command { return &runCmd{env: e} }},
		"invoke":     {"call a direct method through the IoT Hub service API", func(e Env) command { return &invokeCmd{env: e} }},
		"twin":       {"show or update a device or module twin through the service API", func(e Env) command { return &twinCmd{env: e} }},
		"query":      {"query device twins (SELECT * FROM devices WHERE ...), one JSON line each", func(e Env) command { return &queryCmd{env: e} }},
		"job":        {"schedule a method or twin update on many devices as an IoT Hub job; show, list, cancel", func(e Env) command { return &jobCmd{env: e} }},
		"simulate":   {"run N simulated devices answering from a handlers file (a fleet to test against)", func(e Env) command { return &simulateCmd{env: e} }},
		"hub":        {"run a local IoT-Hub-compatible endpoint (MQTT/TLS + REST)", func(e Env) command { return &hubCmd{env: e} }},
		"check":      {"validate a handlers.yaml offline", func(e Env) command { return &checkCmd{env: e} }},
		"call":       {"run one handler locally, without any hub", func(e Env) command { return &callCmd{env: e} }},
		"version":    {"print the version", func(e Env) command { return &versionCmd{env: e} }},
		"completion": {"print a bash, zsh or fish completion script", func(e Env) command { return &completionCmd{env: e} }},
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: methodd <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'methodd <command> -h' for a command's flags and examples.")
}
