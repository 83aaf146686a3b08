// Command methodd answers Azure IoT Hub direct methods from a YAML file
// (methodd run), calls them from the cloud side (methodd invoke), and runs a
// local, protocol-faithful IoT Hub for development and tests (methodd hub).
//
// This file only wires: the subcommands live in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/methodd/methodd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.OS())
	stop()
	os.Exit(code)
}
