package reliability

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/methodd/methodd/internal/procstat"
)

// Proc is one process as /proc/PID/stat describes it.
type Proc struct {
	PID, PPID, PGID int
	State           byte // R, S, D, Z, T, ...
	Comm            string
}

// Processes lists every process in /proc. Processes that exit while it reads
// are skipped.
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

// ReadProc parses /proc/PID/stat.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Proc{}, err
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return Proc{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[end+2:]))
	if len(f) < 3 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || len(f[0]) != 1 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return Proc{PID: pid, PPID: ppid, PGID: pgid, State: f[0][0], Comm: string(b[open+1 : end])}, nil
}

// Strays returns the processes whose parent is pid or whose process group
// is one of pgids (zombies included): what a command left behind.
func Strays(pid int, pgids map[int]bool) ([]Proc, error) {
	ps, err := Processes()
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, p := range ps {
		if p.PPID == pid || (pgids[p.PGID] && p.PID != pid) {
			out = append(out, p)
		}
	}
	return out, nil
}

// OpenFDs counts the open file descriptors of process pid (0 = self).
func OpenFDs(pid int) (int, error) {
	dir := "/proc/self/fd"
	if pid > 0 {
		dir = filepath.Join("/proc", strconv.Itoa(pid), "fd")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("count fds: %w", err)
	}
	if pid > 0 {
		return len(ents), nil
	}
	return len(ents) - 1, nil // minus the fd ReadDir itself held open
}

// RSSBytes is the resident set size of process pid (0 = self), from
// /proc/PID/status (VmRSS).
func RSSBytes(pid int) (int64, error) {
	kb, err := procstat.ReadStatusKB(pid, "VmRSS")
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	return kb[0] * 1024, nil
}
