package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Proc is one process as /proc/PID/stat describes it.
type Proc struct {
	PID, PPID, PGID int
	State           byte // R, S, D, Z, T, ...
	Comm            string
}

// Processes lists every process in /proc. Processes that exit while it
// reads are skipped; it fails only when /proc cannot be listed.
func Processes() ([]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var ps []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := ReadProc(pid)
		if err != nil {
			continue // gone meanwhile
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// ReadProc reads /proc/PID/stat (pid 0: this process). It fails when the
// process does not exist (any more) or the file is not in the kernel's
// format.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile(path(pid, "stat"))
	if err != nil {
		return Proc{}, err
	}
	p, err := ParseProc(b)
	if err != nil {
		return Proc{}, fmt.Errorf("%s: %w", path(pid, "stat"), err)
	}
	return p, nil
}

// ParseProc extracts pid, command name, state, ppid and process group
// (fields 1-5) from the content of /proc/PID/stat. The command name may
// hold spaces and parentheses: it runs from the first '(' to the last ')'.
// Anything else than that layout is an error.
func ParseProc(b []byte) (Proc, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return Proc{}, fmt.Errorf("stat: no command name")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Proc{}, fmt.Errorf("stat: pid: %w", err)
	}
	f := strings.Fields(string(b[end+1:])) // f[0] is field 3 (state)
	if len(f) < 3 || len(f[0]) != 1 {
		return Proc{}, fmt.Errorf("stat: unexpected fields after the command name: %q", f)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Proc{}, fmt.Errorf("stat: ppid: %w", err)
	}
	pgid, err := strconv.Atoi(f[2])
	if err != nil {
		return Proc{}, fmt.Errorf("stat: pgrp: %w", err)
	}
	return Proc{PID: pid, PPID: ppid, PGID: pgid, State: f[0][0], Comm: string(b[open+1 : end])}, nil
}

// Strays returns the processes whose parent is pid or whose process group
// is one of pgids (zombies included; pid itself never): what a command
// left behind. It fails only when /proc cannot be listed.
func Strays(pid int, pgids map[int]bool) ([]Proc, error) {
	ps, err := Processes()
	if err != nil {
		return nil, err
	}
	return strays(ps, pid, pgids), nil
}

// strays selects, from ps, the children of pid and the members of pgids
// other than pid.
func strays(ps []Proc, pid int, pgids map[int]bool) []Proc {
	var out []Proc
	for _, p := range ps {
		if p.PID != pid && (p.PPID == pid || pgids[p.PGID]) {
			out = append(out, p)
		}
	}
	return out
}

// OpenFDs counts the open file descriptors of process pid (0: this
// process). For this process it does not count the one it opens to list
// them. It fails when /proc/PID/fd cannot be listed (no such process, or
// not ours).
func OpenFDs(pid int) (int, error) {
	ents, err := os.ReadDir(path(pid, "fd"))
	if err != nil {
		return 0, fmt.Errorf("count fds: %w", err)
	}
	if pid == 0 || pid == os.Getpid() {
		return len(ents) - 1, nil // minus the fd ReadDir itself held open
	}
	return len(ents), nil
}

// RSSBytes is the resident set size of process pid (0: this process) in
// bytes, from VmRSS of /proc/PID/status. It fails when the file cannot be
// read or has no VmRSS (a zombie).
func RSSBytes(pid int) (int64, error) {
	kb, err := ReadStatusKB(pid, "VmRSS")
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	return kb[0] * 1024, nil
}
