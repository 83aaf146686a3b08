//go:build !linux

package main

import "time"

// processCPU is unknown off Linux; the benchmark then reports 0 CPU.
func processCPU() time.Duration { return 0 }
