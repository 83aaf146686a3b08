package cli

import (
	"io"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal (a progress line is drawn
// there, never into a file or a pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
