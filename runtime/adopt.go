package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shim"
	"golang.org/x/sys/unix"
)

// Live restore policy for a container whose shim died without recording
// an exit while its init still runs: a new shim adopts it (see shim.Adopt).
// The next manager call that meets it (Load, and so List, State, Wait,
// Kill, Delete and every CLI command; or an explicit Adopt) starts the new
// shim through the same detached start helper as create, under the
// container folder's lock so that two managers never start two shims.
// Opts.NoAdopt turns this off: such a container is then reported unknown,
// can be signalled by its recorded identity and removed with delete --force.

// ErrLocked: another manager holds the container folder's lock (it is
// creating the container, or adopting it) and the caller did not wait.
var ErrLocked = errors.New("container folder is locked by another manager")

// Bounds of the adoption path.
const (
	lockTimeout  = 30 * time.Second // waiting for another manager's create or adoption
	adoptTimeout = 30 * time.Second // the adopting shim's ready message
	probeTimeout = 200 * time.Millisecond
)

// lockDir takes the flock of a container folder. Without wait it fails at
// once with ErrLocked when someone holds it; with wait it retries until
// ctx ends or lockTimeout passes. A folder that is gone gives an error
// satisfying os.ErrNotExist. The lock is released by closing the file.
func lockDir(ctx context.Context, dir string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, shim.LockFile), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || !wait || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
			}
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// locked reports whether another manager holds the folder's lock now. It
// creates nothing: a missing lock file is a free lock, and a folder that a
// shim is removing must not get a new entry under its feet.
func locked(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, shim.LockFile), os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	// Shared: two managers looking at once do not see each other.
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

// checkShim reports on the container's shim: nil when shim.pid names a
// live tether-shim serving this container; an error satisfying
// os.ErrNotExist when there is no shim.pid; proc.ErrGone when the shim is
// dead, from an earlier boot, or the pid now belongs to something else;
// any other error when shim.pid cannot be read (corrupt, unknown version).
// It never dials the socket.
func (c *Container) checkShim() (proc.Identity, error) {
	id, err := shim.ReadPid(c.dir, shim.ShimPidFile)
	if err != nil {
		return id, err
	}
	return id, shim.VerifyShim(id, c.m.root, c.id)
}

// shimGone reports whether checkShim's error means no shim runs (as
// opposed to "cannot tell": an unreadable shim.pid).
func shimGone(err error) bool {
	return errors.Is(err, proc.ErrGone) || errors.Is(err, os.ErrNotExist)
}

// signalShim signals the container's shim, after checking through a pidfd
// that id still names it.
func (c *Container) signalShim(id proc.Identity, sig syscall.Signal) error {
	fd, err := id.Open()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := shim.VerifyShim(id, c.m.root, c.id); err != nil {
		return err
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// signalMember signals a process of the container (init or an exec'd
// process) named by its pid record, after checking through a pidfd that it
// is that process and that it runs inside this container.
func (c *Container) signalMember(id proc.Identity, sig syscall.Signal) error {
	if c.rec == nil {
		return fmt.Errorf("pid %d: container record unreadable, not signalled: %w", id.Pid, proc.ErrGone)
	}
	fd, err := shim.OpenMember(c.rec, id)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// orphanInit returns the identity of the container's init when the
// container is an orphan: no live shim, no exit record, and an init that
// is alive and inside the container. ok is false otherwise.
func (c *Container) orphanInit() (proc.Identity, bool) {
	if c.rec == nil || c.staleBoot() {
		return proc.Identity{}, false
	}
	if _, err := c.checkShim(); !shimGone(err) {
		return proc.Identity{}, false
	}
	if _, err := os.Stat(filepath.Join(c.dir, shim.ExitFile)); !errors.Is(err, os.ErrNotExist) {
		return proc.Identity{}, false
	}
	init, err := shim.ReadPid(c.dir, shim.InitPidFile)
	if err != nil || shim.VerifyMember(c.rec, init) != nil {
		return proc.Identity{}, false
	}
	return init, true
}

// staleBoot reports whether the container was created in an earlier boot
// of the host, so that nothing it recorded can be alive.
func (c *Container) staleBoot() bool {
	boot, err := proc.BootID()
	return c.rec != nil && c.rec.BootID != "" && err == nil && c.rec.BootID != boot
}

// Adopt loads container id and, if its shim is gone while its init still
// runs without a recorded exit, starts a new shim that adopts it (whatever
// Opts.NoAdopt says). It returns the container in any case when it exists;
// the error says why an adoption that was needed failed. A container that
// needs no adoption is returned with a nil error.
func (m *Manager) Adopt(ctx context.Context, id string) (*Container, error) {
	c, err := m.load(ctx, id)
	if err != nil {
		return nil, err
	}
	_, err = c.adopt(ctx)
	return c, err
}

// adoptIfAllowed adopts an orphan unless Opts.NoAdopt; failures are logged
// and show in State's reason.
func (c *Container) adoptIfAllowed(ctx context.Context) bool {
	if c.m.opts.NoAdopt {
		return false
	}
	adopted, err := c.adopt(ctx)
	if err != nil {
		c.m.log.WithError(err).WithField("id", c.id).Warn("adopt container")
	}
	return adopted
}

// adopt starts an adopting shim for an orphan and reports whether it did.
// The decision is taken again under the folder's lock, so of two managers
// adopting at once one starts the shim and the other finds it running.
func (c *Container) adopt(ctx context.Context) (bool, error) {
	if _, ok := c.orphanInit(); !ok {
		return false, nil
	}
	lock, err := lockDir(ctx, c.dir, true)
	if err != nil {
		return false, fmt.Errorf("adopt %s: %w", c.id, err)
	}
	defer lock.Close()
	init, ok := c.orphanInit()
	if !ok {
		return false, nil
	}
	if c.socketAnswers(ctx) {
		return false, fmt.Errorf("adopt %s: a process answers on %s that shim.pid does not name: not adopting", c.id, shim.SocketFile)
	}
	ctx, cancel := context.WithTimeout(ctx, adoptTimeout)
	defer cancel()
	r, err := c.m.spawnShim(ctx, "adopt", c.id, lock)
	if err != nil {
		return false, fmt.Errorf("adopt %s: %w", c.id, err)
	}
	defer r.Close()
	if err := readReady(ctx, r, c.dir); err != nil {
		return false, fmt.Errorf("adopt %s (init pid %d): %w", c.id, init.Pid, err)
	}
	c.m.log.WithField("id", c.id).WithField("pid", init.Pid).Info("adopted container")
	return true, nil
}

// socketAnswers reports whether a live process other than the dead shim
// serves the container's socket: a connection is accepted and the peer's
// credentials (SO_PEERCRED: the process that bound the socket) name a
// process that is alive. A refused or missing socket, or one still held
// for a moment by the shim that is dying, means nobody does. It dials
// through an O_PATH handle of the folder so a long root still fits in a
// socket address.
func (c *Container) socketAnswers(ctx context.Context) bool {
	fd, err := unix.Open(c.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	d := net.Dialer{Timeout: probeTimeout}
	conn, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", fd, shim.SocketFile))
	if err != nil {
		return false
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(s uintptr) { cred, err = unix.GetsockoptUcred(int(s), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred == nil {
		return false
	}
	st, err := proc.ReadStat(int(cred.Pid))
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// settle is called when a container has no live shim: it adopts an orphan
// (unless Opts.NoAdopt), or waits while another manager holds the folder's
// lock over a container that has no init yet (it is being created). It
// reports whether the caller should look again.
func (c *Container) settle(ctx context.Context) bool {
	if c.adoptIfAllowed(ctx) {
		return true
	}
	if _, err := os.Stat(filepath.Join(c.dir, shim.InitPidFile)); !errors.Is(err, os.ErrNotExist) || !locked(c.dir) {
		return false
	}
	lock, err := lockDir(ctx, c.dir, true)
	if err != nil {
		return false
	}
	lock.Close()
	return true
}

// noAdoptReason says why a live orphan init was not adopted.
func (c *Container) noAdoptReason() string {
	if c.m.opts.NoAdopt {
		return "adoption is off"
	}
	return "adoption failed (see the manager's log)"
}

// lostReason says why the exit status of a container whose shim and init
// are gone, with no exit record, is unknown. err is why init counts as gone.
func (c *Container) lostReason(init proc.Identity, err error) string {
	boot, _ := proc.BootID()
	switch {
	case c.staleBoot() || init.BootID != boot:
		return "the host rebooted since the container ran; its exit status is unknown"
	case errors.Is(err, shim.ErrForeign):
		return fmt.Sprintf("init pid %d now belongs to an unrelated process; the exit status is unknown", init.Pid)
	}
	if st, serr := proc.ReadStat(init.Pid); serr == nil && st.StartTime != init.StartTime {
		return fmt.Sprintf("init pid %d was reused by another process; the exit status is unknown", init.Pid)
	}
	return "shim died before it recorded the exit; the exit status is unknown"
}
