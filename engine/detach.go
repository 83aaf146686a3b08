package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/logkey"
)

// StatusScheduled is the status of a detach method's reply: the call was
// accepted and its command will start once the reply is delivered, as an
// HTTP 202 accepts a request for later processing (async methods answer
// 202 too).
const StatusScheduled = 202

// systemdRunTimeout bounds one systemd-run. With --no-block it only asks
// systemd to queue the transient unit, which takes milliseconds; the bound
// is for a system bus that does not answer (D-Bus's own default is 25 s).
const systemdRunTimeout = 30 * time.Second

// maxUnitRID bounds the request id's part of a transient unit's name, so
// that the whole stays well under systemd's 255 bytes.
const maxUnitRID = 64

// scheduledBody is the payload of a detach method's reply.
type scheduledBody struct {
	Status string `json:"status"` // always "scheduled"
	Method string `json:"method"`
}

// detach answers a detach method's call: the reply (202, {"status":
// "scheduled","method":NAME}) says the command is scheduled, and its After
// starts the command on its own once the reply has been delivered; a reply
// that is never delivered starts nothing. After starts the command at most
// once however often it is called (a duplicate request id answered from
// this reply must not start it again). A call whose command cannot be
// rendered is answered with that error and starts nothing; a command that
// then fails to start is logged, since the caller has its answer already.
//
// The command gets no stdin (the payload is in METHODD_PAYLOAD, up to
// 96 KiB) and no timeout; run_as and limits apply (setsid: credentials and
// the limits gate; systemd-run: --uid/--gid and Limit*= properties). Under systemd it runs as a transient unit, else
// in a session of its own (detachVia).
func (s *Set) detach(m *method, r Request, raw []byte, params, env map[string]any) Reply {
	sp, rep, ok := s.prepare(m, r, raw, params, env)
	if !ok {
		return rep
	}
	sp.stdin, sp.timeout = nil, 0
	systemdRun := s.detachVia()
	var once sync.Once
	start := func() {
		if systemdRun != "" {
			s.startUnit(systemdRun, m.name, r.RequestID, sp)
		} else {
			s.startSession(m.name, r.RequestID, sp)
		}
	}
	b, _ := marshal(scheduledBody{Status: "scheduled", Method: m.name})
	return Reply{Status: StatusScheduled, Payload: b, After: func() { once.Do(start) }}
}

// detachVia returns the systemd-run program a detached command starts
// through, or "" to start it with setsid. systemd-run is used when the
// daemon runs under systemd (INVOCATION_ID is set in its environment,
// Options.Environ) and systemd-run is found in the daemon's PATH: stopping
// or restarting the service kills every process of its cgroup, setsid
// children included, so only a unit of its own outlives it.
func (s *Set) detachVia() string {
	if s.funcs.environ["INVOCATION_ID"] == "" {
		return ""
	}
	return lookPath("systemd-run", s.searchPath)
}

// startUnit asks systemd to run sp as a transient service of its own
// (systemdArgv) and logs the unit's name; its outcome is in the journal.
func (s *Set) startUnit(systemdRun, method, rid string, sp procSpec) {
	unit := unitName(method, rid)
	ctx, cancel := context.WithTimeout(context.Background(), systemdRunTimeout)
	defer cancel()
	argv := systemdArgv(systemdRun, unit, os.Geteuid(), os.Getegid(), sp)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = s.baseEnv // PATH, LANG, HOME: nothing of the daemon's secrets
	out, err := cmd.CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			err = fmt.Errorf("%w: %s", err, boundText(msg))
		}
		s.log.Error("detached command did not start", logkey.Method, method, logkey.RequestID, rid, logkey.Unit, unit, logkey.Err, err)
		return
	}
	s.log.Info("detached command queued as a systemd unit; its outcome is in the journal", logkey.Method, method,
		logkey.RequestID, rid, logkey.Unit, unit)
}

// unitLimit maps a limits key to its systemd.exec directive (the same
// rlimit: LimitAS is RLIMIT_AS, LimitCPU seconds, LimitFSIZE bytes).
var unitLimit = map[string]string{
	"memory": "LimitAS", "cpu": "LimitCPU", "open_files": "LimitNOFILE", "processes": "LimitNPROC", "output": "LimitFSIZE",
}

// systemdArgv is the systemd-run command line that starts sp as the
// transient service unit: --no-block (queue it, don't wait), --collect
// (unload it when it ends, even failed: the journal keeps its outcome),
// --no-ask-password (fail rather than prompt). The command's environment
// goes through --setenv (systemd gives a unit no environment of the
// caller's); its stdin is /dev/null, its output goes to the journal. A
// daemon that is not root (uid, gid: its effective ids) has its unit run
// with its own ids (--uid, --gid), not as the manager's root: systemd-run
// must not raise the command's privilege above the daemon's.
func systemdArgv(systemdRun, unit string, uid, gid int, sp procSpec) []string {
	argv := make([]string, 0, 10+len(sp.env)+len(sp.args))
	argv = append(argv, systemdRun, "--no-block", "--collect", "--quiet", "--no-ask-password",
		"--unit="+unit, "--working-directory="+sp.dir)
	switch {
	case sp.runAs != nil: // run_as, checked at load: the unit runs as that user
		argv = append(argv, "--uid="+strconv.FormatUint(uint64(sp.runAs.uid), 10), "--gid="+strconv.FormatUint(uint64(sp.runAs.gid), 10))
	case uid != 0:
		argv = append(argv, "--uid="+strconv.Itoa(uid), "--gid="+strconv.Itoa(gid))
	}
	if sp.limits != nil { // the unit's own rlimits (systemd.exec Limit*=)
		for _, r := range sp.limits.list {
			argv = append(argv, "--property="+unitLimit[r.key]+"="+strconv.FormatUint(r.value, 10))
		}
	}
	for _, kv := range sp.env {
		argv = append(argv, "--setenv="+kv)
	}
	argv = append(argv, "--", sp.path)
	if len(sp.args) > 1 {
		argv = append(argv, sp.args[1:]...)
	}
	return argv
}

// unitName is the transient unit of one detached call:
// methodd-detached-METHOD-RID-RANDOM.service. Method names are already
// valid in a unit name; the request id keeps only letters, digits, "_",
// "." and "-" (others become "_") and at most maxUnitRID of them; the
// random suffix keeps two calls with the same request id apart.
func unitName(method, rid string) string {
	var b strings.Builder
	b.WriteString("methodd-detached-")
	b.WriteString(method)
	if rid != "" {
		b.WriteByte('-')
		for i := 0; i < len(rid) && i < maxUnitRID; i++ {
			c := rid[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				c = '_'
			}
			b.WriteByte(c)
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	b.WriteByte('-')
	b.WriteString(hex.EncodeToString(rnd[:]))
	b.WriteString(".service")
	return b.String()
}
