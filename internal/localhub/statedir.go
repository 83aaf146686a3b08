package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// lockFile is the state-directory file a running hub holds an exclusive
// lock on (tryLock: flock(2), LockFileEx on Windows) for its lifetime; it
// holds the holder's pid, command line and start time (Holder). The lock,
// not the file, says whether a hub runs: the kernel drops it when the
// process dies, SIGKILL included.
const lockFile = "hub.lock"

// ErrDirLocked is returned by Start when another hub (methodd hub or run
// --local, in this or another process) holds DIR.
var ErrDirLocked = errors.New("state dir in use by another hub")

// ErrDirUnsafe is returned by Start when DIR or a file in it is not owned by
// the running user or is writable by group or others: its keys and
// registry could have been planted or read.
var ErrDirUnsafe = errors.New("state dir not private to the running user")

// Holder is the hub that holds (or last held) a state dir's lock.
type Holder struct {
	PID       int       `json:"pid"`
	Command   string    `json:"command"`
	StartedAt time.Time `json:"startedAt"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "an unknown process"
	}
	return fmt.Sprintf("pid %d (%s), started %s", h.PID, h.Command, h.StartedAt.Format(time.RFC3339))
}

// stateLock is a held lock on a state dir.
type stateLock struct {
	f      *os.File
	holder Holder
}

// lockWait is how long Start retries a held lock: a CLI's liveness probe
// (Running) holds it for microseconds.
const lockWait = time.Second

// lockStateDir takes DIR's lock, retrying for lockWait; a lock held longer
// is ErrDirLocked naming the holder.
func lockStateDir(dir string, now time.Time) (*stateLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localhub: lock %s: %w", path, err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err = tryLock(f, true)
		if err == nil || !lockHeld(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.Close()
		if lockHeld(err) {
			return nil, fmt.Errorf("localhub: %w: %s is held by %s; stop that hub or give another --dir", ErrDirLocked, dir, readHolder(path))
		}
		return nil, fmt.Errorf("localhub: lock %s: %w", path, err)
	}
	l := &stateLock{f: f, holder: Holder{PID: os.Getpid(), Command: strings.Join(os.Args, " "), StartedAt: now.UTC().Truncate(time.Second)}}
	b, _ := json.Marshal(l.holder)
	if err = f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		l.release()
		return nil, fmt.Errorf("localhub: lock %s: %w", path, err)
	}
	return l, nil
}

// release drops the lock (the file stays: removing it would race with a
// hub taking it). It is idempotent and nil-safe.
func (l *stateLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unlock(l.f)
	l.f.Close()
	l.f = nil
}

// readHolder reads the holder recorded in a lock file; the zero Holder when
// it cannot.
func readHolder(path string) Holder {
	var h Holder
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &h)
	}
	return h
}

// Running reports whether a hub holds DIR's lock now, and who holds or
// last held it. A dir without a lock file has no running hub (of this
// version); ok is then false and last the zero Holder. The probe takes a
// shared lock for an instant.
func Running(dir string) (running bool, last Holder, err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, Holder{}, nil
	}
	if err != nil {
		return false, Holder{}, fmt.Errorf("localhub: %w", err)
	}
	defer f.Close()
	last = readHolder(path)
	switch err := tryLock(f, false); {
	case err == nil:
		_ = unlock(f)
		return false, last, nil
	case lockHeld(err):
		return true, last, nil
	default:
		return false, last, fmt.Errorf("localhub: probe %s: %w", path, err)
	}
}

// openStateDir creates DIR when missing (0700), refuses it unless private,
// takes its lock, then refuses it if anything in it is not private (the
// lock is then released).
func openStateDir(dir string, now time.Time) (*stateLock, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("localhub: state dir: %w", err)
	}
	if err := checkPrivate(dir, dir, fi); err != nil {
		return nil, err
	}
	l, err := lockStateDir(dir, now)
	if err != nil {
		return nil, err
	}
	if err := checkStateDir(dir); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// checkStateDir refuses a state dir that is not private (checkPrivate) or
// holds a file or folder that is not: DIR itself first, then everything
// in it (registry.json, identities/*, hub.json, dps.json, x509/*, keys).
func checkStateDir(dir string) error {
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved // DIR itself may be reached through a link
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("localhub: state dir: %w", err)
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a temp file)
			}
			return fmt.Errorf("localhub: state dir: %w", err)
		}
		if path == dir && !fi.IsDir() {
			return fmt.Errorf("localhub: state dir %s is not a directory", dir)
		}
		return checkPrivate(dir, path, fi)
	})
}
