package engine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupJail is the child cgroup one command runs in.
type cgroupJail struct {
	dir string
	fd  *os.File // the directory, for SysProcAttr.CgroupFD
}

// ownCgroupDir is the daemon's own cgroup v2 directory, or "" when there
// is no cgroup v2 hierarchy mounted where it is looked for.
func ownCgroupDir() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	var rel string
	found := false
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			rel, found = p, true
		}
	}
	if !found {
		return ""
	}
	for _, mnt := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st syscall.Statfs_t
		const cgroup2Magic = 0x63677270
		if syscall.Statfs(mnt, &st) == nil && st.Type == cgroup2Magic {
			return filepath.Join(mnt, rel)
		}
	}
	return ""
}

// newJail creates a child cgroup of base (the daemon's own cgroup,
// ownCgroupDir) for one command; nil when that is not possible (the
// command then runs in tree mode).
func newJail(base string) *cgroupJail {
	if base == "" {
		return nil
	}
	dir, err := os.MkdirTemp(base, "methodd-cmd-")
	if err != nil {
		return nil
	}
	fd, err := os.Open(dir)
	if err != nil {
		_ = os.Remove(dir)
		return nil
	}
	return &cgroupJail{dir: dir, fd: fd}
}

// pids lists the processes in the cgroup.
func (j *cgroupJail) pids() []int {
	b, err := os.ReadFile(filepath.Join(j.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signal sends sig to every process in the cgroup; SIGKILL goes through
// cgroup.kill where the kernel has it (5.14), which also gets processes
// forked meanwhile.
func (j *cgroupJail) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL && os.WriteFile(filepath.Join(j.dir, "cgroup.kill"), []byte("1"), 0) == nil {
		return
	}
	for _, pid := range j.pids() {
		_ = syscall.Kill(pid, sig)
	}
}

// close kills what is left, waits (bounded) for the cgroup to empty and
// removes it. It returns the pids still in it when it gave up.
func (j *cgroupJail) close() []int {
	defer j.fd.Close()
	deadline := time.Now().Add(escapeWait)
	for {
		j.signal(syscall.SIGKILL)
		left := j.pids()
		if len(left) == 0 {
			if err := os.Remove(j.dir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				return nil
			}
		} else if time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procInfo is what /proc/PID/stat says about a process's family.
type procInfo struct {
	pid, ppid, pgid, sid int
	start                uint64 // start time in clock ticks: tells a reused pid apart
}

// readProcInfo reads /proc/PID/stat; ok is false for a process that is
// gone or a zombie.
func readProcInfo(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	// utime stime cutime cstime priority nice threads itrealvalue starttime
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return procInfo{}, false
	}
	p := procInfo{pid: pid}
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgid, _ = strconv.Atoi(f[2])
	p.sid, _ = strconv.Atoi(f[3])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

// allProcs reads every live process of /proc.
func allProcs() []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	ps := make([]procInfo, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcInfo(pid); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// escapedFrom returns the live processes descending from leader (by
// parent links, or by belonging to a session or group a descendant leads)
// that are outside the group pgid.
func escapedFrom(leader, pgid int) []procInfo {
	ps := allProcs()
	family := map[int]bool{leader: true}
	for changed := true; changed; {
		changed = false
		for _, p := range ps {
			if !family[p.pid] && (family[p.ppid] || family[p.sid] || family[p.pgid]) {
				family[p.pid], changed = true, true
			}
		}
	}
	var out []procInfo
	for _, p := range ps {
		if family[p.pid] && p.pid != leader && p.pgid != pgid {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether p still runs (the same process, not a reused pid).
func (p procInfo) alive() bool {
	q, ok := readProcInfo(p.pid)
	return ok && q.start == p.start
}

// outsideGroup returns those of pids not in process group pgid.
func outsideGroup(pids []int, pgid int) []int {
	var out []int
	for _, pid := range pids {
		if p, ok := readProcInfo(pid); ok && p.pgid != pgid {
			out = append(out, pid)
		}
	}
	return out
}

// escapeWait bounds how long the end of a command waits for its cgroup to
// empty after killing it.
const escapeWait = 2 * time.Second
