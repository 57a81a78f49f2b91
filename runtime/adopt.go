package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/internal/unixsock"
	"github.com/tether-run/tether/shimapi"
	"golang.org/x/sys/unix"
)

// Live restore policy for a container whose shim died without recording
// an exit while its init still runs: a new shim adopts it (see shim.Shim.Adopt).
// The next manager call that meets it (Load, and so List, State, Wait,
// Kill, Delete and every CLI command; or an explicit Adopt) starts the new
// shim through the same detached start helper as create, under the
// container folder's lock so that two managers never start two shims.
// Opts.NoAdopt turns this off: such a container is then reported unknown,
// can be signalled by its recorded identity and removed with delete --force.

// Bounds of the adoption path.
const (
	adoptTimeout = 30 * time.Second // the adopting shim's ready message
	probeTimeout = 200 * time.Millisecond
)

// checkShim reports on the container's shim: nil when shim.pid names a
// live tether-shim serving this container; an error satisfying
// os.ErrNotExist when there is no shim.pid; proc.ErrGone when the shim is
// dead, from an earlier boot, or the pid now belongs to something else;
// any other error when shim.pid cannot be read (corrupt, unknown version).
// It never dials the socket.
func (c *Container) checkShim() (proc.Identity, error) {
	id, err := c.st.ReadShimPid()
	if err != nil {
		return id, err
	}
	return id, restore.VerifyShim(id, c.m.root, c.id)
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
	if err := restore.VerifyShim(id, c.m.root, c.id); err != nil {
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
	fd, err := restore.OpenMember(c.rec, id)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// orphanInit returns the identity of the container's init when restore
// says the container is an orphan: no live shim, no exit record, and an
// init that is alive and inside the container, in this boot.
func (c *Container) orphanInit() (proc.Identity, bool) {
	if c.rec == nil {
		return proc.Identity{}, false
	}
	r := c.examine()
	return r.Init, r.Verdict == restore.Orphan
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
	lock, err := c.st.Lock(ctx, true)
	if err != nil {
		return false, fmt.Errorf("adopt %s: %w", c.id, err)
	}
	defer lock.Close()
	init, ok := c.orphanInit()
	if !ok {
		return false, nil
	}
	if c.socketAnswers(ctx) {
		return false, fmt.Errorf("adopt %s: a process answers on %s that shim.pid does not name: not adopting", c.id, c.st.SocketPath())
	}
	ctx, cancel := context.WithTimeout(ctx, adoptTimeout)
	defer cancel()
	r, err := c.m.spawnShim(ctx, shimapi.ActionAdopt, c.id, lock)
	if err != nil {
		return false, fmt.Errorf("adopt %s: %w", c.id, err)
	}
	defer r.Close()
	if _, err := readReady(ctx, r, c.st); err != nil {
		return false, fmt.Errorf("adopt %s (init pid %d): %w", c.id, init.Pid, err)
	}
	c.m.log.WithField("id", c.id).WithField("pid", init.Pid).Info("adopted container")
	return true, nil
}

// socketAnswers reports whether a live process other than the dead shim
// serves the container's socket: a connection is accepted and the peer's
// credentials (SO_PEERCRED: the process that bound the socket) name a
// process that is alive. A refused or missing socket, or one still held
// for a moment by the shim that is dying, means nobody does.
func (c *Container) socketAnswers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := unixsock.Dial(ctx, c.st.SocketPath())
	if err != nil {
		return false
	}
	defer conn.Close()
	cred, err := unixsock.PeerCred(conn)
	if err != nil {
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
	if c.st.Init().HasPid() || !c.st.Locked() {
		return false
	}
	lock, err := c.st.Lock(ctx, true)
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
