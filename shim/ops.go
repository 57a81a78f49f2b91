package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/store"
)

// deleteTimeout bounds the wait for init to die during a forced delete.
const deleteTimeout = 10 * time.Second

// errCreating refuses operations until Create or Adopt has returned.
var errCreating = errors.New("still being created")

// ready refuses operations before Create or Adopt has succeeded.
func (s *Shim) ready() error {
	if !s.isCreated() {
		return fmt.Errorf("container %s is %w", s.id, errCreating)
	}
	return nil
}

// Creating reports whether err is the refusal of an operation made before
// Create or Adopt returned.
func Creating(err error) bool { return errors.Is(err, errCreating) }

// target finds the process an operation names: "" is init. An exec'd
// process whose start is still under way (its IO is not set up yet) is
// not found: only Wait may see it (lookup).
func (s *Shim) target(exec string) (*process, error) {
	return s.lookup(exec, false)
}

// lookup is target; with starting, an exec'd process still starting is
// returned too (Wait then blocks until it ends or fails to start).
func (s *Shim) lookup(exec string, starting bool) (*process, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if exec == "" {
		return s.init, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.execs[exec]; ok && (starting || p.io != nil) {
		return p, nil
	}
	return nil, fmt.Errorf("exec %q in container %s: %w", exec, s.id, ErrNotFound)
}

// Start starts the container's init (the runtime's start). Only a created
// container can be started: otherwise a *TransitionError.
func (s *Shim) Start(ctx context.Context) error {
	p, err := s.target("")
	if err != nil {
		return err
	}
	p.op.Lock()
	defer p.op.Unlock()
	if status, _, _ := p.current(); status != StatusCreated {
		return &TransitionError{From: status, To: StatusRunning}
	}
	p.starting.Store(true)
	if err := s.rt.Start(ctx, s.id); err != nil {
		p.starting.Store(false)
		return err
	}
	if err := p.transition(StatusRunning); err != nil {
		// It exited already: start succeeded, the exit stands.
		s.log.WithError(err).Debug("start raced with exit")
	}
	s.journalStart(p)
	return nil
}

// Kill sends sig (1-64) to init through the runtime (with all, to every
// process of the container), or to exec'd process exec by its recorded
// identity (all is refused then). A process that has exited gives
// ErrNotRunning. SIGKILL of a paused container also thaws it, so it dies.
func (s *Shim) Kill(ctx context.Context, exec string, sig syscall.Signal, all bool) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("%w: signal %d", ErrInvalid, sig)
	}
	p, err := s.target(exec)
	if err != nil {
		return err
	}
	if p != s.init {
		return s.killExec(p, sig, all)
	}
	p.op.Lock()
	defer p.op.Unlock()
	status, _, _ := p.current()
	if status == StatusStopped {
		return fmt.Errorf("container %s has exited: %w", s.id, ErrNotRunning)
	}
	err = s.rt.Kill(ctx, s.id, sig, &oci.KillOpts{All: all})
	if errors.Is(err, oci.ErrNotRunning) {
		return fmt.Errorf("container %s has exited: %w", s.id, ErrNotRunning)
	}
	if err == nil && sig == syscall.SIGKILL && status == StatusPaused {
		s.thawKilled(ctx)
	}
	return err
}

// killExec signals one exec'd process by its recorded identity.
func (s *Shim) killExec(p *process, sig syscall.Signal, all bool) error {
	if all {
		return fmt.Errorf("%w: all signals the whole container, not one exec'd process", ErrInvalid)
	}
	status, pid, _ := p.current()
	if status == StatusStopped {
		return fmt.Errorf("exec %s in container %s has exited: %w", p.id, s.id, ErrNotRunning)
	}
	if err := pid.Signal(sig); err != nil {
		if errors.Is(err, proc.ErrGone) {
			return fmt.Errorf("exec %s in container %s has exited: %w", p.id, s.id, ErrNotRunning)
		}
		return err
	}
	return nil
}

// thawKilled resumes a paused container that was sent SIGKILL: a frozen
// process does not die until thawed (cgroup v1 freezer; runc thaws by
// itself, crun does not), and a killed container should end, as docker
// does for kill of a paused container. init's op lock is held.
func (s *Shim) thawKilled(ctx context.Context) {
	if err := s.rt.Resume(ctx, s.id); err != nil {
		// runc thaws a container it kills; its exit will be recorded.
		s.log.WithError(err).Debug("resume after SIGKILL of a paused container")
		return
	}
	s.init.transition(StatusRunning) // fails harmlessly if it has exited
}

// Pause freezes every process of the running container.
func (s *Shim) Pause(ctx context.Context) error { return s.pause(ctx, true) }

// Resume thaws the paused container.
func (s *Shim) Resume(ctx context.Context) error { return s.pause(ctx, false) }

func (s *Shim) pause(ctx context.Context, pause bool) error {
	p, err := s.target("")
	if err != nil {
		return err
	}
	to, op := StatusPaused, s.rt.Pause
	if !pause {
		to, op = StatusRunning, s.rt.Resume
	}
	p.op.Lock()
	defer p.op.Unlock()
	status, _, _ := p.current()
	if err := checkTransition(status, to); err != nil || status == StatusCreated {
		return fmt.Errorf("container %s is %s: %w", s.id, status, &TransitionError{From: status, To: to})
	}
	if err := op(ctx, s.id); err != nil {
		return err
	}
	if err := p.transition(to); err != nil {
		return err
	}
	typ := store.EventPaused
	if !pause {
		typ = store.EventResumed
	}
	s.journal(store.Event{Type: typ})
	return nil
}

// Wait returns the exit record of init ("") or of exec'd process exec
// once it is durable, or ctx's error. Called before Create or Adopt has
// returned, it waits for that first (a failed create ends the shim).
func (s *Shim) Wait(ctx context.Context, exec string) (*store.ExitRecord, error) {
	select {
	case <-s.created:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p, err := s.lookup(exec, true)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	exit, failed := p.exit, p.failed
	p.mu.Unlock()
	if failed != nil {
		return nil, fmt.Errorf("exec %q in container %s did not start (%w): %w", exec, s.id, ErrNotFound, failed)
	}
	return exit, nil
}

// CloseStdin ends the input of init ("") or of an exec'd process; with a
// terminal it sends the EOF character instead.
func (s *Shim) CloseStdin(exec string) error {
	p, err := s.target(exec)
	if err != nil {
		return err
	}
	return p.io.closeStdin()
}

// WriteStdin writes p to the input of init ("") or of an exec'd process;
// it blocks while the process does not read.
func (s *Shim) WriteStdin(exec string, b []byte) error {
	p, err := s.target(exec)
	if err != nil {
		return err
	}
	return p.io.writeStdin(b)
}

// Resize sets the terminal size of init ("") or of an exec'd process.
func (s *Shim) Resize(exec string, width, height uint16) error {
	p, err := s.target(exec)
	if err != nil {
		return err
	}
	return p.io.resize(width, height)
}

// Attach returns a live follower of the output of init ("") or of an
// exec'd process, from now on. Close it when done.
func (s *Shim) Attach(exec string) (*Follower, error) {
	p, err := s.target(exec)
	if err != nil {
		return nil, err
	}
	return p.io.fan.add(), nil
}

// Pids lists the pids of the container's processes (the runtime's ps).
func (s *Shim) Pids(ctx context.Context) ([]int, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	shared := s.sharedCg
	s.mu.Unlock()
	if shared { // the runtime's ps reads the container's cgroup
		_, init, _ := s.init.current()
		return namespacePids(init.Pid)
	}
	return s.rt.Ps(ctx, s.id)
}

// Delete removes the container: with force it is killed first, otherwise a
// running or paused one gives ErrRunning. The runtime's container, the
// exec'd processes and the folder are gone when it returns nil. A forced
// delete gets through a runtime that cannot help (binary removed, hung,
// its state lost): init is then killed by its recorded identity and the
// runtime's state folder removed by hand. The caller then calls Close and
// ends the process. Deletes are serialised: one that finds the container
// deleted already (by another, or by the auto-remove) returns nil.
func (s *Shim) Delete(ctx context.Context, force bool) error {
	if err := s.ready(); err != nil {
		return err
	}
	s.delMu.Lock()
	defer s.delMu.Unlock()
	if s.deleted {
		return nil
	}
	// Not under init's op lock: a forced delete must get through a
	// runtime call that hangs (a wedged pause), not queue behind it.
	ctx = context.WithoutCancel(ctx)
	status, _, _ := s.init.current()
	if (status == StatusRunning || status == StatusPaused) && !force {
		return fmt.Errorf("container %s is %s: %w", s.id, status, ErrRunning)
	}
	deleted := false // the runtime's container is gone already
	if status != StatusStopped {
		var err error
		if deleted, err = s.stopInit(ctx); err != nil {
			return err
		}
	}
	if !deleted {
		if err := s.runtimeDelete(ctx, force); err != nil {
			return err
		}
	}
	s.killExecs()
	s.awaitExecs(deleteTimeout)
	s.init.io.close()
	s.watch.off.Store(true) // the folder's removal is ours: do not restore it
	if err := s.st.Remove(); err != nil {
		s.watch.off.Store(false)
		return fmt.Errorf("remove state folder: %w", err)
	}
	s.deleted = true
	s.journal(store.Event{Type: store.EventDeleted})
	return nil
}

// stopInitGrace is how long a forced delete waits for init to die after
// the runtime said it killed it, before killing it by identity.
const stopInitGrace = 2 * time.Second

// stopInit kills the container for a forced delete: through the runtime,
// which kills all its processes, or, if the runtime fails or init lives
// on, by init's recorded identity (pidfd). It returns once init's exit
// record is written, and reports whether the runtime's delete succeeded
// (then its container is gone and need not be deleted again).
func (s *Shim) stopInit(ctx context.Context) (deleted bool, err error) {
	grace := stopInitGrace
	if err := s.rt.Delete(ctx, s.id, &oci.DeleteOpts{Force: true}); err != nil {
		s.log.WithError(err).Warn("runtime delete --force failed: killing init by identity")
		grace = 0
	} else {
		deleted = true
	}
	select {
	case <-s.init.done:
		return deleted, nil
	case <-time.After(grace):
	}
	_, pid, _ := s.init.current()
	pid.Signal(syscall.SIGKILL) // ErrGone: it died meanwhile
	select {
	case <-s.init.done:
		return deleted, nil
	case <-time.After(deleteTimeout):
		return deleted, fmt.Errorf("container %s: init pid %d did not exit after SIGKILL", s.id, pid.Pid)
	}
}

// runtimeDelete removes the runtime's record of the stopped container. A
// runtime that no longer knows it is fine. When the runtime fails (its
// binary is gone, or it hung) the error stands unless force: then its
// state folder is removed here and the delete goes on; the container's
// cgroups, which only the runtime knows, may stay behind (empty).
func (s *Shim) runtimeDelete(ctx context.Context, force bool) error {
	err := s.rt.Delete(ctx, s.id, &oci.DeleteOpts{Force: true})
	if err == nil || errors.Is(err, oci.ErrNotFound) {
		return nil
	}
	if !force && !errors.Is(err, oci.ErrBinaryNotFound) {
		return err
	}
	s.log.WithError(err).Warn("runtime delete failed: removing its state folder by hand")
	if s.rec.RuntimeRoot != "" {
		if rerr := os.RemoveAll(filepath.Join(s.rec.RuntimeRoot, s.id)); rerr != nil {
			return fmt.Errorf("%w (and removing its state: %v)", err, rerr)
		}
	}
	return nil
}

// awaitExecs waits, at most d, for the exec'd processes still running to
// have their exit recorded, so that no record is written into a folder
// being removed.
func (s *Shim) awaitExecs(d time.Duration) {
	s.mu.Lock()
	var done []chan struct{}
	for _, p := range s.execs {
		done = append(done, p.done)
	}
	s.mu.Unlock()
	deadline := time.After(d)
	for _, ch := range done {
		select {
		case <-ch:
		case <-deadline:
			s.log.Warn("exec'd processes still running at delete")
			return
		}
	}
}
