package localhub

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// lockAt is where tryLock locks one byte: at 4 GiB (OffsetHigh 1), far past
// the holder record. Windows byte-range locks are mandatory, so a lock over
// the record would keep other processes from reading who holds the dir.
func lockAt() *windows.Overlapped { return &windows.Overlapped{OffsetHigh: 1} }

// tryLock takes an exclusive (else shared) LockFileEx lock on f without
// waiting; lockHeld(err) when another open file holds a conflicting one.
// Windows drops the lock when the process ends, as flock(2) is dropped.
func tryLock(f *os.File, exclusive bool) error {
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, lockAt())
}

// unlock drops f's lock.
func unlock(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, lockAt())
}

// lockHeld reports whether err is tryLock's "held by another".
func lockHeld(err error) bool { return errors.Is(err, windows.ERROR_LOCK_VIOLATION) }

// checkPrivate accepts every path on Windows: files there have ACLs, not a
// Unix owner and mode bits, and a state dir under the user's profile
// (the default) inherits an ACL private to that user.
func checkPrivate(_, _ string, _ fs.FileInfo) error { return nil }
