//go:build !linux

package engine

import "github.com/methodd/methodd/internal/logkey"

// startSession logs ErrCommandsLinuxOnly: prepare refuses every command
// off Linux before a detach reply is sent, so this is not reached.
func (s *Set) startSession(method, rid string, _ procSpec) {
	s.log.Error("detached command did not start", logkey.Method, method, logkey.RequestID, rid, logkey.Err, ErrCommandsLinuxOnly)
}
