//go:build !linux

package cli

import (
	"fmt"
	"runtime"
)

// daemonSupported refuses methodd run off Linux: the daemon's commands
// need Linux (process groups, credentials, rlimits, cgroups) and its
// service integration is systemd's. The cloud-side commands, the local
// hub and the offline ones work on every platform.
func daemonSupported() error {
	return fmt.Errorf("run: the device daemon runs on Linux only (this is %s/%s); invoke, twin, query, job, simulate, hub, check and call work here",
		runtime.GOOS, runtime.GOARCH)
}
