package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/cnproc"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// Reasons written in the exit record of an adopted process.
const (
	// ReasonAdoptedUnknown: the process ended while a shim that is not its
	// parent watched it, and its status could not be observed.
	ReasonAdoptedUnknown = "exited while adopted; status not observable"
	// ReasonNoShim: the process ended while no shim watched it (the one
	// reason restore gives for it).
	ReasonNoShim = restore.ReasonNoShimRan
)

// oldShimExitWait bounds the wait for a dead shim's last threads to go.
const oldShimExitWait = 2 * time.Second

// UnknownStatus is the exit status recorded when the true one cannot be
// known. It is never 0.
const UnknownStatus = store.UnknownStatus

// Adopt takes over a container whose first shim died while its init still
// runs and no exit was recorded (restore's Orphan verdict): it creates
// nothing. It takes the init by its recorded identity with a pidfd
// (checking that the process is inside the container), asks the runtime
// whether it is created, running or paused, writes its own shim.pid and
// serves it like a container it created. It returns init's pid.
//
// Being no ancestor of the init, it cannot reap it: it learns of the exit
// from the pidfd and of the status from the kernel's process events
// connector when that is available (root, CONFIG_PROC_EVENTS); otherwise
// the exit record says UnknownStatus with ReasonAdoptedUnknown. exec'd
// processes of the dead shim that still run are adopted the same way;
// those that ended unseen get an exit record with ReasonNoShim. Output
// written while no shim ran is lost; output written after the adoption
// reaches init's log and opts.InitIO's sinks again when stdout and stderr
// were pipes (InitIO.Stdin is not: stdin is not kept; exec'd processes go
// to the store's logs).
//
// Errors: ErrNotRunning when the init has exited or an exit was recorded,
// ErrExists when a live shim already serves the container.
func (s *Shim) Adopt(ctx context.Context) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	init, err := s.checkOrphan()
	if err != nil {
		return 0, err
	}
	cn, err := cnproc.Listen()
	if err != nil {
		s.log.WithError(err).Warn("exit statuses of adopted processes will be unknown")
		cn = nil
	} else {
		cn.Watch(init.Pid) // before the liveness check: no exit is missed
	}
	fd, err := restore.OpenMember(s.rec, init)
	if err != nil {
		stopListening(cn)
		return 0, fmt.Errorf("adopt init pid %d: %w: %w", init.Pid, ErrNotRunning, err)
	}
	var tr *exitTracer
	if cn == nil { // rootless: a tracer learns the status instead
		tr = s.startTracer("", init)
	}
	if err := s.startAdopted(ctx, init, fd, cn, tr); err != nil {
		if tr != nil {
			tr.close()
		}
		unix.Close(fd)
		stopListening(cn)
		return 0, err
	}
	return init.Pid, nil
}

// checkOrphan refuses a container that is not an orphan, by restore's
// verdict: one with an exit record, one whose shim still lives, one whose
// init is gone. A dead shim's last threads are waited for first: its
// socket closes with them.
func (s *Shim) checkOrphan() (proc.Identity, error) {
	facts := restore.Gather(s.st, s.rec, nil)
	if facts.ShimErr != nil && facts.Shim.Pid > 0 {
		facts.Shim.WaitExit(oldShimExitWait)
	}
	r := restore.Classify(facts)
	switch r.Verdict {
	case restore.Orphan:
		return r.Init, nil
	case restore.Live:
		return proc.Identity{}, fmt.Errorf("shim pid %d still serves container %s: %w", facts.Shim.Pid, s.id, ErrExists)
	case restore.Stopped:
		return proc.Identity{}, fmt.Errorf("container %s has an exit record: %w", s.id, ErrNotRunning)
	case restore.Corrupt:
		return proc.Identity{}, r.Err
	}
	return proc.Identity{}, fmt.Errorf("container %s is %s (%s): %w", s.id, r.Verdict, r.Reason, ErrNotRunning)
}

func stopListening(cn *cnproc.Listener) {
	if cn != nil {
		cn.Close()
	}
}

// startAdopted sets the shim up around an init it holds a pidfd of.
func (s *Shim) startAdopted(ctx context.Context, init proc.Identity, fd int, cn *cnproc.Listener, tr *exitTracer) error {
	status, err := s.runtimeStatus(ctx)
	if err != nil {
		return err
	}
	if s.self, err = s.st.WriteShimPid(os.Getpid()); err != nil {
		return err
	}
	s.loadCgroup(init.Pid)
	initIO := s.opts.InitIO
	initIO.Stdin = nil
	s.init, err = s.adoptProcess("", s.st.Init(), init, status, initIO)
	if err != nil {
		return err
	}
	s.adoptExecs(cn)
	s.adopted = time.Now().UTC()
	go s.watchAdopted(s.init, fd, cn, tr)
	s.started()
	s.log.WithFields(logrus.Fields{"pid": init.Pid, "status": status}).Info("adopted container")
	s.journal(store.Event{Type: store.EventAdopted, Pid: init.Pid})
	return nil
}

// runtimeStatus asks the OCI runtime whether the container is created,
// running or paused.
func (s *Shim) runtimeStatus(ctx context.Context) (string, error) {
	st, err := s.rt.State(ctx, s.id)
	if err != nil {
		return "", fmt.Errorf("runtime state: %w", err)
	}
	switch st.Status {
	case oci.StatusCreated:
		return StatusCreated, nil
	case oci.StatusRunning:
		return StatusRunning, nil
	case oci.StatusPaused:
		return StatusPaused, nil
	}
	return "", fmt.Errorf("runtime says container %s is %s: %w", s.id, st.Status, ErrNotRunning)
}

// adoptProcess builds the process of an adopted pid: its log is opened for
// appending and its output pipes, if any, are drained into it (and io's
// sinks) again. Its status is reached through the state table from
// created.
func (s *Shim) adoptProcess(id string, files store.Proc, pid proc.Identity, status string, io IO) (*process, error) {
	pio, err := s.openIO(files, io)
	if err != nil {
		return nil, err
	}
	pio.warn = s.warnDroppedAdopted
	out, errf := proc.ReopenOutput(pid.Pid)
	if out != nil {
		pio.drain(crilog.Stdout, out)
	}
	if errf != nil {
		pio.drain(crilog.Stderr, errf)
	}
	p := s.newProcess(id, files, pio)
	p.pid = pid
	if status != StatusCreated {
		p.startJournal.Do(func() {}) // its start was the dead shim's to tell
		if err := p.transition(StatusRunning); err != nil {
			return nil, err
		}
	}
	if status == StatusPaused {
		if err := p.transition(StatusPaused); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// adoptExecs takes over the exec'd processes of the dead shim, each as
// restore classifies it: live ones are watched like init, ended ones get
// an exit record saying the status is unknown.
func (s *Shim) adoptExecs(cn *cnproc.Listener) {
	names, err := s.st.Execs()
	if err != nil {
		s.log.WithError(err).Warn("exec'd processes not listed: not adopted")
	}
	for _, name := range names {
		if err := s.adoptExec(cn, name); err != nil {
			s.log.WithError(err).WithField("exec", name).Warn("exec'd process not adopted")
		}
	}
}

func (s *Shim) adoptExec(cn *cnproc.Listener, name string) error {
	files := s.st.Exec(name)
	facts := restore.GatherExec(s.rec, files)
	if cn != nil && facts.PidErr == nil {
		cn.Watch(facts.Pid.Pid) // before the liveness check below
	}
	r := restore.ClassifyExec(facts)
	switch r.Verdict {
	case restore.Stopped, restore.Absent:
		return nil
	case restore.Corrupt:
		return r.Err
	case restore.Lost:
		r.Exit.ExitedAt = time.Now().UTC()
		return files.WriteExit(r.Exit)
	}
	fd, err := restore.OpenMember(s.rec, r.Init)
	if errors.Is(err, proc.ErrGone) {
		return files.WriteExit(&store.ExitRecord{Pid: r.Init.Pid, Status: UnknownStatus,
			ExitedAt: time.Now().UTC(), Reason: ReasonNoShim})
	}
	if err != nil {
		return err
	}
	p, err := s.adoptProcess(name, files, r.Init, StatusRunning, IO{})
	if err != nil {
		unix.Close(fd)
		return err
	}
	var tr *exitTracer
	if cn == nil {
		tr = s.startTracer(name, r.Init)
	}
	s.mu.Lock()
	s.execs[name] = p
	s.mu.Unlock()
	go s.watchAdopted(p, fd, cn, tr)
	return nil
}

// waitRetry is how long watchAdopted waits before it polls a pidfd again
// after poll failed.
const waitRetry = time.Second

// watchAdopted waits for an adopted process to end and records its exit:
// the true status when the process events connector or the exit tracer tr
// (rootless; nil when there is none) delivered it, UnknownStatus with a
// reason otherwise. When init ends, exec'd processes
// still running are killed, as for a shim's own init. A failed poll is
// never taken for an exit: the process is asked through its pidfd whether
// it still runs, and watched again if so.
func (s *Shim) watchAdopted(p *process, fd int, cn *cnproc.Listener, tr *exitTracer) {
	defer unix.Close(fd)
	p.mu.Lock()
	p.pidfd = fd // an upgrade hands it over (handoff.go)
	p.mu.Unlock()
	wait := s.waitFd
	if wait == nil {
		wait = proc.WaitFd
	}
	for !wait(fd, -1) {
		if errors.Is(unix.PidfdSendSignal(fd, 0, nil, 0), unix.ESRCH) {
			break // it has exited: poll failed for another reason
		}
		s.log.WithField("exec", p.id).Warn("waiting for an adopted process failed; watching it again")
		time.Sleep(waitRetry)
	}
	_, pid, _ := p.current()
	e := reaper.Exit{Pid: pid.Pid, Status: UnknownStatus, Timestamp: time.Now()}
	reason := ReasonAdoptedUnknown
	if cn != nil {
		if status, err := cn.StatusOf(pid.Pid); err == nil {
			e.Status, reason = status, ""
		} else {
			reason += " (" + err.Error() + ")"
		}
	}
	if tr != nil {
		if status, err := tr.status(p.files, pid.Pid); err == nil {
			e.Status, reason = status, ""
		} else {
			reason += " (" + err.Error() + ")"
		}
	}
	if r := p.killedBy(); r != "" && reason == "" {
		reason = r
	}
	// An upgrade under way has handed this process over: the new image
	// records its exit, and this goroutine ends with the old image.
	s.frz.gate.RLock()
	defer s.frz.gate.RUnlock()
	s.record(p, e, reason)
}

// warnDroppedAdopted logs output of an adopted process that could not be
// written to its log.
func (s *Shim) warnDroppedAdopted(err error) {
	s.log.WithError(err).Warn("output of an adopted process dropped: it could not be written to the log")
}

// crashPoint kills the shim when TETHER_CRASH_POINT (a comma-separated
// list) names this point. It exists for the crash-recovery tests (the
// variable is inherited from the manager that started the shim) and does
// nothing otherwise.
func crashPoint(name string) {
	if slices.Contains(strings.Split(os.Getenv("TETHER_CRASH_POINT"), ","), name) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
