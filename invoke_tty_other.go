//go:build !linux

package main

import "io"

// isTerminal reports false off Linux: the progress line is a nicety.
func isTerminal(io.Writer) bool { return false }
