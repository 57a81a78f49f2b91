package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The folder's lock (flock of ROOT/ID/lock). The manager holds it from the
// moment it makes the folder until the shim has reported ready, passing it
// down to the shim so that it is held for the whole create even if the
// manager dies; it takes it again to adopt an orphaned container or to
// remove a folder that no shim serves. Whoever holds it is the only one
// deciding about a container that has no live shim.

// ErrLocked: another manager holds the folder's lock and the caller did
// not wait.
var ErrLocked = errors.New("container folder is locked by another manager")

// LockTimeout bounds Lock's wait for another manager's create or adoption.
const LockTimeout = 30 * time.Second

// Lock takes the folder's lock. Without wait it fails at once with
// ErrLocked when someone holds it; with wait it retries until ctx ends or
// LockTimeout passes. A folder that is gone gives an error satisfying
// os.ErrNotExist. The lock is released by closing the file; a process that
// must keep it across exec passes the file on.
func (f *Folder) Lock(ctx context.Context, wait bool) (*os.File, error) {
	lf, err := os.OpenFile(f.lockPath(), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(LockTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return lf, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || !wait || time.Now().After(deadline) {
			lf.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w", f.dir, ErrLocked)
			}
			return nil, fmt.Errorf("lock %s: %w", f.dir, err)
		}
		select {
		case <-ctx.Done():
			lf.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Locked reports whether someone holds the folder's lock now. It creates
// nothing: a missing lock file is a free lock, and a folder that a shim is
// removing must not get a new entry under its feet.
func (f *Folder) Locked() bool {
	lf, err := os.OpenFile(f.lockPath(), os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer lf.Close()
	// Shared: two managers looking at once do not see each other.
	err = unix.Flock(int(lf.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}
