// Command methodd answers Azure IoT Hub direct methods from a YAML file
// (methodd run), calls them from the cloud side (methodd invoke), and runs a
// local, protocol-faithful IoT Hub for development and tests (methodd hub).
//
// This file only wires: it picks the subcommand, passes the process's
// streams and environment in, and maps the returned error to an exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}
