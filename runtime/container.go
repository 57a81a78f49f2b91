package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/runtime/internal/client"
	"github.com/tether-run/tether/store"
)

// UnknownExitStatus is reported when a process ended while nobody could
// see how (its shim died first). It is never 0.
const UnknownExitStatus = store.UnknownStatus

// deleteProbeTimeout bounds asking a shim that shim.pid cannot name to
// delete its container.
const deleteProbeTimeout = 5 * time.Second

// Container is a handle on one container folder. It caches nothing that
// can change: every method reads the folder or asks the shim.
type Container struct {
	m   *Manager
	id  string
	st  *store.Folder
	rec *store.Record // nil when the record could not be read
	err error         // why rec is nil
	// removed is the exit of an auto-remove container this handle found
	// stopped without its shim and removed (autoremove.go); nil otherwise.
	removed *ExitRecord
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.id }

// Dir returns the container's state folder.
func (c *Container) Dir() string { return c.st.Dir() }

// Record returns what the container was created with, or the error met
// reading its record.
func (c *Container) Record() (*Record, error) {
	if c.rec == nil {
		return nil, c.err
	}
	return fromRecord(c.rec), nil
}

// LogPath is the container's output log (CRI format).
func (c *Container) LogPath() string { return c.st.Init().LogPath() }

// Log describes the output log of init ("") or of exec'd process exec:
// its Path (CRI format; rotated copies are Path.1, .2...) and Done, which
// reports whether nothing more will be written to it: the process's exit
// record exists (the shim writes it only after the last output is in the
// log), the container is deleted, or its shim is gone.
type Log struct {
	Path string
	Done func() bool
}

// Log returns the log of init ("") or of exec'd process exec. A bad exec
// ID gives ErrInvalid; a log that does not exist is not an error here.
func (c *Container) Log(exec string) (*Log, error) {
	if c.removed != nil {
		return nil, c.removedError()
	}
	p := c.st.Init()
	if exec != "" {
		if err := ids.ValidID(exec); err != nil {
			return nil, err
		}
		p = c.st.Exec(exec)
	}
	return &Log{Path: p.LogPath(), Done: func() bool {
		if p.HasExit() {
			return true
		}
		if ok, err := c.st.Exists(); !ok || err != nil {
			return true
		}
		id, err := c.st.ReadShimPid()
		return err == nil && !id.Alive()
	}}, nil
}

// Load finds the container id in the root. A container whose record is
// corrupt still loads (its State says unknown and why), so it can be
// deleted. A missing container gives ErrNotFound.
//
// Load reads the container record and checks the shim's recorded identity
// in /proc; it dials nothing and starts nothing, except for an orphan (its
// shim died without recording an exit and its init still runs): then,
// unless Opts.NoAdopt, it starts a new shim that adopts the container (see
// Adopt) before it returns.
func (m *Manager) Load(ctx context.Context, id string) (*Container, error) {
	c, err := m.load(ctx, id)
	if err != nil {
		return nil, err
	}
	c.adoptIfAllowed(ctx)
	c.finishAutoRemove(ctx)
	return c, nil
}

// load is Load without adoption.
func (m *Manager) load(ctx context.Context, id string) (*Container, error) {
	st, err := store.Open(m.root, id)
	if err != nil {
		return nil, err
	}
	if ok, err := st.Exists(); err != nil {
		return nil, err
	} else if !ok {
		return nil, withRemedy(RemedyListIDs, id, fmt.Errorf("container %s: %w in %s", id, ErrNotFound, m.root))
	}
	c := &Container{m: m, id: id, st: st}
	c.rec, c.err = st.ReadRecord()
	return c, nil
}

// List loads every container in the root and asks each for its state, in
// parallel; one that does not answer in time is reported unknown and does
// not hold up the others.
func (m *Manager) List(ctx context.Context) ([]*State, error) {
	ents, err := os.ReadDir(m.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no container was ever created here
	}
	if err != nil {
		return nil, fmt.Errorf("read root %s: %w", m.root, err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ids.Match(e.Name()) {
			names = append(names, e.Name())
		}
	}
	states := make([]*State, len(names))
	var wg sync.WaitGroup
	for i, id := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			states[i] = m.stateOf(ctx, id)
		}()
	}
	wg.Wait()
	sort.Slice(states, func(i, j int) bool { return states[i].ID < states[j].ID })
	return states, nil
}

func (m *Manager) stateOf(ctx context.Context, id string) *State {
	c, err := m.Load(ctx, id)
	if err == nil {
		var st *State
		if st, err = c.State(ctx); err == nil {
			return st
		}
	}
	st := &State{ID: id, Status: StatusUnknown, Reason: err.Error()}
	if re := RemedyOf(err); re != nil {
		st.Remedy = re.Remedy
	}
	return st
}

// client talks to the container's shim, with deadlines derived from the
// runtime timeout in its record.
func (c *Container) client() *client.Client {
	var rt time.Duration
	if c.rec != nil {
		rt = c.rec.RuntimeTimeout()
	}
	return client.New(c.st.SocketPath(), client.DeadlinesFor(rt))
}

// examine is restore's verdict on the container as its records stand.
func (c *Container) examine() restore.Result {
	return restore.Examine(c.st, c.rec, c.err)
}

// State reports the container's state. It never invents an exit status:
// when the shim is gone it reads the exit record, and without one it says
// the status is unknown and why.
func (c *Container) State(ctx context.Context) (*State, error) {
	st, err := c.state(ctx)
	if st != nil && c.rec != nil {
		st.AutoRemove = c.rec.AutoRemove
	}
	return st, err
}

func (c *Container) state(ctx context.Context) (*State, error) {
	if c.removed != nil {
		st := c.stopped(c.removed)
		st.Pid, st.Removed = c.removed.Pid, true
		return st, nil
	}
	if c.rec == nil {
		reason, remedy := c.recordProblem()
		return &State{ID: c.id, Status: StatusUnknown, Reason: reason, Remedy: remedy}, nil
	}
	sid, err := c.checkShim()
	if err != nil && !shimGone(err) {
		return c.broken(err), nil
	}
	if err != nil && c.adoptIfAllowed(ctx) {
		sid, err = c.checkShim()
	}
	if err == nil {
		st, err := c.client().State(ctx)
		if err == nil {
			return fromWireState(st), nil
		}
		if exit, xerr := c.st.Init().ReadExit(); xerr == nil {
			return c.stopped(fromStoreExit(exit)), nil
		}
		if errors.Is(err, ErrVersion) {
			return c.base(StatusUnknown, fmt.Sprintf("shim pid %d refused: %v", sid.Pid, err)), nil
		}
		return c.base(StatusUnknown, fmt.Sprintf("shim pid %d not responding: %v", sid.Pid, err)), nil
	}
	return c.stateWithoutShim(), nil
}

func (c *Container) base(status, reason string) *State {
	created := c.rec.CreatedAt
	st := &State{ID: c.id, Status: status, Bundle: c.rec.Bundle, CreatedAt: &created, Reason: reason}
	if id, err := c.st.Init().ReadPid(); err == nil {
		st.Pid = id.Pid
	}
	return st
}

func (c *Container) stopped(exit *ExitRecord) *State {
	st := c.base(StatusStopped, exit.Reason)
	st.ExitStatus = &exit.Status
	st.OOMKilled, st.OOMKills = exit.OOMKilled, exit.OOMKills
	if !exit.ExitedAt.IsZero() {
		st.ExitedAt = &exit.ExitedAt
	}
	return st
}

// stateWithoutShim decides from the records alone, by restore's verdict.
func (c *Container) stateWithoutShim() *State {
	r := c.examine()
	switch r.Verdict {
	case restore.Stopped, restore.Lost:
		return c.stopped(fromStoreExit(r.Exit))
	case restore.Orphan:
		st := c.base(StatusUnknown, fmt.Sprintf("%s: shim is gone but init pid %d still runs", c.noAdoptReason(), r.Init.Pid))
		st.Remedy = RemedyForceDelete
		return st
	case restore.Creating:
		st := c.base(StatusUnknown, r.Reason)
		if !r.Locked {
			st.Remedy = RemedyForceDelete
		}
		return st
	case restore.Corrupt:
		return c.broken(r.Err)
	}
	return c.base(StatusUnknown, "a shim started serving it meanwhile: ask again")
}

// broken is the unknown state of a container whose records cannot be
// read: err says why.
func (c *Container) broken(err error) *State {
	st := c.base(StatusUnknown, err.Error())
	st.Remedy = corruptRemedy(err)
	return st
}

// corruptRemedy is what to do about an unreadable record: a forced
// delete, except for a record of a newer version, which is left alone.
func corruptRemedy(err error) Remedy {
	if errors.Is(err, ErrVersion) {
		return RemedyNone
	}
	return RemedyForceDelete
}

// Start starts the container's init.
func (c *Container) Start(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	if err := c.client().Start(ctx); err != nil {
		return c.wrap("start", err)
	}
	crashPoint("after-start")
	return nil
}

// Kill sends sig to init, or with all to every process of the container.
// Without a shim, a still-running init is signalled by its recorded
// identity, so a reused pid is never hit.
func (c *Container) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	return c.KillExec(ctx, "", sig, all)
}

// KillExec signals the exec'd process exec ("" for init).
func (c *Container) KillExec(ctx context.Context, exec string, sig syscall.Signal, all bool) error {
	if err := c.usable(); err != nil {
		return err
	}
	if _, err := c.checkShim(); shimGone(err) && !c.adoptIfAllowed(ctx) {
		return c.killOrphan(exec, sig)
	}
	return c.wrap("kill", c.client().Kill(ctx, exec, sig, all))
}

// proc returns the files of init ("") or of exec'd process exec.
func (c *Container) proc(exec string) store.Proc {
	if exec == "" {
		return c.st.Init()
	}
	return c.st.Exec(exec)
}

func (c *Container) killOrphan(exec string, sig syscall.Signal) error {
	files := c.proc(exec)
	id, err := files.ReadPid()
	if err != nil || files.HasExit() {
		return fmt.Errorf("kill %s: %w", c.id, ErrNotRunning)
	}
	if err := c.signalMember(id, sig); err != nil {
		return fmt.Errorf("kill %s: %w: %v", c.id, ErrNotRunning, err)
	}
	return nil
}

// Pause freezes every process of the container; Resume thaws them.
func (c *Container) Pause(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	return c.wrap("pause", c.client().Pause(ctx, true))
}

// Resume thaws a paused container.
func (c *Container) Resume(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	return c.wrap("resume", c.client().Pause(ctx, false))
}

// Stats asks the container's shim for its own resource use.
func (c *Container) Stats(ctx context.Context) (*Stats, error) {
	st, err := c.client().Stats(ctx)
	if err != nil {
		return nil, c.wrap("stats", err)
	}
	return &Stats{Goroutines: st.Goroutines, FDs: st.FDs, Conns: st.Conns, Pending: st.Pending}, nil
}

// Wait blocks until init has exited and returns its exit record; an exit
// that happened while no manager ran is returned at once. Only ctx bounds
// it. When the shim died without recording the exit, the record says the
// status is unknown (UnknownExitStatus) and why.
func (c *Container) Wait(ctx context.Context) (*ExitRecord, error) {
	return c.WaitExec(ctx, "")
}

// WaitExec is Wait for the exec'd process exec ("" for init).
func (c *Container) WaitExec(ctx context.Context, exec string) (*ExitRecord, error) {
	if c.removed != nil {
		return c.removedExit(exec)
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	if exec != "" {
		if err := ids.ValidID(exec); err != nil {
			return nil, c.wrap("wait", err)
		}
	}
	files := c.proc(exec)
	if exit, err := files.ReadExit(); err == nil {
		return fromStoreExit(exit), nil // the shim marks the process stopped under the same lock it writes this with
	}
	for {
		// A live shim is asked, not the record: it answers only once the
		// record is durable and its own state says stopped.
		_, serr := c.checkShim()
		if ok, err := c.st.Exists(); err == nil && !ok {
			return c.removedExit(exec) // removed while we waited (auto-remove, or a delete)
		}
		if shimGone(serr) {
			if c.settle(ctx) {
				continue // a shim serves it now, or another manager finished with it
			}
			return c.exitWithoutShim(exec)
		}
		exit, err := c.client().Wait(ctx, exec)
		if err == nil {
			return fromWireExit(exit), nil
		}
		if exit, rerr := files.ReadExit(); rerr == nil {
			return fromStoreExit(exit), nil // recorded, and the shim went away or does not know it
		}
		if ctx.Err() != nil || !errors.Is(err, ErrUnresponsive) {
			return nil, c.wrap("wait", err)
		}
		if serr != nil { // shim.pid unreadable, and nobody answers the socket
			return nil, fmt.Errorf("wait %s: %v: %w", c.id, serr, err)
		}
		select { // the shim went away mid-wait: look again
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exitWithoutShim decides a process's end from its records when its shim
// is gone, by restore's verdict: its exit record; an unknown status (never
// 0) with the reason when it is gone without one; an error when it still
// runs or cannot be told.
func (c *Container) exitWithoutShim(exec string) (*ExitRecord, error) {
	var r restore.Result
	if exec == "" {
		r = c.examine()
	} else {
		r = restore.ClassifyExec(restore.GatherExec(c.rec, c.st.Exec(exec)))
	}
	switch r.Verdict {
	case restore.Stopped, restore.Lost:
		return fromStoreExit(r.Exit), nil
	case restore.Absent:
		return nil, fmt.Errorf("wait %s: exec %q: %w (no exit record and no pid record)", c.id, exec, ErrNotFound)
	case restore.Orphan:
		if exec != "" {
			return nil, &RemedyError{Remedy: RemedyKillExec, ID: c.id, Exec: exec,
				Err: fmt.Errorf("wait %s: exec %q (pid %d) still runs but its shim is gone", c.id, exec, r.Init.Pid)}
		}
		return nil, fmt.Errorf("wait %s: %s: shim is gone but init pid %d still runs", c.id, c.noAdoptReason(), r.Init.Pid)
	case restore.Corrupt:
		return nil, fmt.Errorf("wait %s: %w", c.id, r.Err)
	}
	return nil, fmt.Errorf("wait %s: %s", c.id, r.Reason)
}

// Delete removes the container, its shim and its folder. A running
// container is refused with ErrRunning unless force, which kills it first.
//
// With force, a container whose shim or records are broken is removed
// anyway: a wedged shim is killed (after checking through a pidfd that it
// is this container's shim), the runtime's container deleted (with every
// OCI runtime that has a root here when the record is unreadable), a live
// init killed by its recorded identity after checking that it runs inside
// the container, and the folder removed. A folder that no shim serves is
// removed under its lock: a create or an adoption another manager is doing
// is waited for, never torn down half-way.
func (c *Container) Delete(ctx context.Context, force bool) error {
	if err := c.newer(); err != nil {
		return err
	}
	sid, err := c.checkShim()
	switch {
	case err == nil:
		if done, err := c.deleteThroughShim(ctx, sid, force); done {
			return err
		}
	case !shimGone(err):
		if !force {
			return withRemedy(RemedyForceDelete, c.id, fmt.Errorf("delete %s: %w", c.id, err))
		}
		// shim.pid is unreadable, but a shim may still serve the socket.
		pctx, cancel := context.WithTimeout(ctx, deleteProbeTimeout)
		err := c.client().Delete(pctx, true)
		cancel()
		if err == nil {
			return nil
		}
	}
	return c.deleteWithoutShim(ctx, force)
}

// deleteThroughShim asks the live shim to delete the container. It reports
// done=false when the caller must clean up instead: with force, the shim
// did not answer (or the record is unreadable and the shim refused) and
// has been killed.
func (c *Container) deleteThroughShim(ctx context.Context, sid proc.Identity, force bool) (bool, error) {
	if c.rec == nil && !force {
		return true, c.usable()
	}
	err := c.client().Delete(ctx, force)
	if err == nil {
		// The folder is gone and the shim is on its way out; one that
		// lingers has nothing left to guard, so it is made to go.
		if !sid.WaitExit(10 * time.Second) {
			c.signalShim(sid, syscall.SIGKILL)
			sid.WaitExit(2 * time.Second)
		}
		return true, nil
	}
	if errors.Is(err, ErrVersion) {
		return true, c.refuseNewer(err) // a newer shim: never killed for its version
	}
	if ok, xerr := c.st.Exists(); xerr == nil && !ok {
		// Removed meanwhile (its shim's auto-remove, or another
		// manager): the shim is on its way out.
		sid.WaitExit(10 * time.Second)
		return true, nil
	}
	broken := errors.Is(err, ErrUnresponsive) || c.rec == nil
	if !force || !broken {
		return true, c.wrap("delete", err)
	}
	c.signalShim(sid, syscall.SIGKILL)
	sid.WaitExit(2 * time.Second)
	return false, nil
}

// newer refuses a container any of whose records is of a newer version
// than this build reads: it belongs to a newer tether, which is left to
// deal with it. Not even a forced delete touches it.
func (c *Container) newer() error {
	if errors.Is(c.err, ErrVersion) {
		return c.refuseNewer(c.err)
	}
	f := restore.Gather(c.st, c.rec, c.err)
	for _, err := range []error{f.ShimErr, f.ExitErr, f.InitErr} {
		if errors.Is(err, ErrVersion) {
			return c.refuseNewer(err)
		}
	}
	return nil
}

// refuseNewer is the error for a container of a newer tether.
func (c *Container) refuseNewer(err error) error {
	return fmt.Errorf("delete %s: %w: it was made by a newer tether, which must remove it; nothing was changed", c.id, err)
}

// deleteWithoutShim removes a container no shim serves, under the folder's
// lock. Without force, an init that still runs is refused with ErrRunning.
func (c *Container) deleteWithoutShim(ctx context.Context, force bool) error {
	lock, err := c.st.Lock(ctx, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil // removed meanwhile
	}
	if err != nil {
		return c.wrap("delete", err)
	}
	defer lock.Close()
	if _, err := c.checkShim(); err == nil {
		return fmt.Errorf("delete %s: another manager created or adopted it meanwhile: try again", c.id)
	}
	if !force {
		if _, orphan := c.orphanInit(); orphan {
			return withRemedy(RemedyForceDelete, c.id, fmt.Errorf("delete %s: init still runs without a shim: %w", c.id, ErrRunning))
		}
		if c.rec == nil && c.st.Init().HasPid() {
			return fmt.Errorf("delete %s: %w", c.id, c.usable())
		}
	}
	return c.cleanup(context.WithoutCancel(ctx))
}

// cleanup removes what a dead shim left: live processes of the container
// (by identity, checked to be inside it), the runtime's container, and the
// folder. The caller holds the folder's lock or made the folder.
func (c *Container) cleanup(ctx context.Context) error {
	c.killMembers()
	for _, rt := range c.runtimes() {
		err := rt.Delete(ctx, c.id, &oci.DeleteOpts{Force: true})
		switch {
		case errors.Is(err, oci.ErrBinaryNotFound) && strings.HasPrefix(rt.Root, c.m.root+"/"):
			// Nobody can run the runtime: drop its state by hand, as
			// the shim does (its processes were killed above).
			os.RemoveAll(filepath.Join(rt.Root, c.id))
		case err != nil && !errors.Is(err, oci.ErrNotFound) && !errors.Is(err, oci.ErrBinaryNotFound):
			c.m.log.WithError(err).WithField("id", c.id).Warn("runtime delete")
		}
	}
	var err error
	for range 3 { // a manager that looked in meanwhile may have made the lock file again
		if err = c.st.Remove(); err == nil {
			return nil
		}
	}
	return fmt.Errorf("delete %s: remove folder: %w", c.id, err)
}

// killMembers kills init and exec'd processes still running, each only
// after checking that its recorded identity names a process inside the
// container. Without a readable record nothing is signalled here: the
// runtime's delete kills what it knows.
func (c *Container) killMembers() {
	if c.rec == nil {
		return
	}
	if init, err := c.st.Init().ReadPid(); err == nil {
		c.signalMember(init, syscall.SIGKILL)
	}
	names, _ := c.st.Execs()
	for _, n := range names {
		if id, err := c.st.Exec(n).ReadPid(); err == nil {
			c.signalMember(id, syscall.SIGKILL)
		}
	}
}

// runtimes are the OCI runtimes that may hold the container: the one in
// its record, or, when the record is unreadable, every runtime with a root
// under ROOT/.oci (and the manager's own).
func (c *Container) runtimes() []*oci.Runtime {
	if c.rec != nil {
		return []*oci.Runtime{{Command: c.rec.Runtime, Root: c.rec.RuntimeRoot, Args: c.rec.RuntimeArgs}}
	}
	own := c.m.runtimeRoot(c.m.opts.Runtime)
	rts := []*oci.Runtime{{Command: c.m.opts.Runtime, Root: own, Args: c.m.opts.RuntimeArgs}}
	roots, _ := filepath.Glob(filepath.Join(c.m.root, ".oci", "*"))
	for _, r := range roots {
		if r != own {
			rts = append(rts, &oci.Runtime{Command: filepath.Base(r), Root: r})
		}
	}
	return rts
}

// recordProblem says why the container record could not be read, and
// what can be done about it.
func (c *Container) recordProblem() (string, Remedy) {
	r := c.examine()
	switch {
	case r.Verdict == restore.Creating && !r.Locked:
		return r.Reason, RemedyForceDelete
	case r.Verdict == restore.Corrupt:
		return r.Err.Error(), corruptRemedy(r.Err)
	}
	return r.Reason, RemedyNone
}

// usable refuses operations on a container whose record is unreadable,
// or that this handle found ended and removed (auto-remove).
func (c *Container) usable() error {
	if c.removed != nil {
		return c.removedError()
	}
	if c.rec == nil {
		return withRemedy(corruptRemedy(c.err), c.id, fmt.Errorf("container %s is unusable (%w)", c.id, c.err))
	}
	return nil
}

func (c *Container) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, c.id, err)
}
