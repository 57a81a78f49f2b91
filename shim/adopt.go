package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/runtime/oci"
	"golang.org/x/sys/unix"
)

// LockFile is the container folder's lock (flock). The manager holds it
// from the moment it makes the folder until the shim has reported ready,
// passing it down to the shim so that it is held for the whole create even
// if the manager dies; it takes it again to adopt an orphaned container or
// to remove a folder that no shim serves. Whoever holds it is the only one
// deciding about a container that has no live shim.
const LockFile = "lock"

// Reasons written in the exit record of an adopted process.
const (
	// ReasonAdoptedUnknown: the process ended while a shim that is not its
	// parent watched it, and its status could not be observed.
	ReasonAdoptedUnknown = "exited while adopted; status not observable"
	// ReasonNoShim: the process ended while no shim watched it.
	ReasonNoShim = "exited while no shim ran; status unknown"
)

// oldShimExitWait bounds the wait for a dead shim's last threads to go.
const oldShimExitWait = 2 * time.Second

// UnknownStatus is the exit status recorded when the true one cannot be
// known. It is never 0.
const UnknownStatus = 255

// Adopt serves a container whose first shim died while its init still runs
// and no exit was recorded: it does not create anything. It takes the init
// by its recorded identity with a pidfd (checking that the process is
// inside the container), writes its own shim.pid, binds the control socket
// and serves it like Run, until the container is deleted or ctx is done.
//
// Being no ancestor of the init, it cannot reap it: it learns of the exit
// from the pidfd and of the status from the kernel's process events
// connector when that is available (root, CONFIG_PROC_EVENTS); otherwise
// the exit record says UnknownStatus with ReasonAdoptedUnknown. exec'd
// processes of the dead shim that still run are adopted the same way;
// those that ended unseen get an exit record with ReasonNoShim. Output
// written while no shim ran is lost; output written after the adoption
// reaches the log again when stdout and stderr were pipes.
//
// Errors: ErrNotRunning when the init has exited or an exit was recorded,
// ErrExists when a live shim already serves the container.
func Adopt(ctx context.Context, cfg Config) error {
	s, err := setupAdopt(ctx, cfg)
	report(cfg.Ready, s, err)
	if err != nil {
		return err
	}
	return s.serve(ctx)
}

func setupAdopt(ctx context.Context, cfg Config) (*Shim, error) {
	s := &Shim{id: cfg.ID, dir: filepath.Join(cfg.Root, cfg.ID), log: cfg.Log,
		execs: map[string]*process{}, byPid: map[int]*process{},
		stash: map[int]reaper.Exit{}, shutdown: make(chan struct{}), created: make(chan struct{})}
	if s.log == nil {
		s.log = logrus.NewEntry(logrus.StandardLogger())
	}
	s.protectFromOOM()
	rec, init, err := checkOrphan(cfg.Root, cfg.ID, s.dir)
	if err != nil {
		return nil, err
	}
	s.rec = rec
	cn, err := listenExits()
	if err != nil {
		s.log.WithError(err).Warn("exit statuses of adopted processes will be unknown")
		cn = nil
	} else {
		cn.watchPid(init.Pid) // before the liveness check: no exit is missed
	}
	fd, err := OpenMember(rec, init)
	if err != nil {
		stopListening(cn)
		return nil, fmt.Errorf("adopt init pid %d: %w: %w", init.Pid, ErrNotRunning, err)
	}
	if err := s.startAdopted(ctx, init, fd, cn); err != nil {
		unix.Close(fd)
		stopListening(cn)
		return nil, err
	}
	return s, nil
}

// checkOrphan reads the records and refuses a container that is not an
// orphan: one with an exit record, or with a shim still alive.
func checkOrphan(root, id, dir string) (*Record, proc.Identity, error) {
	rec, err := ReadRecord(dir)
	if err != nil {
		return nil, proc.Identity{}, fmt.Errorf("read container record: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ExitFile)); err == nil {
		return nil, proc.Identity{}, fmt.Errorf("container %s has an exit record: %w", id, ErrNotRunning)
	}
	if old, err := ReadPid(dir, ShimPidFile); err == nil {
		if VerifyShim(old, root, id) == nil {
			return nil, proc.Identity{}, fmt.Errorf("shim pid %d still serves container %s: %w", old.Pid, id, ErrExists)
		}
		old.WaitExit(oldShimExitWait) // its socket closes with its last thread
	}
	init, err := ReadPid(dir, InitPidFile)
	if err != nil {
		return nil, proc.Identity{}, fmt.Errorf("read init pid: %w", err)
	}
	return rec, init, nil
}

func stopListening(cn *exitListener) {
	if cn != nil {
		cn.close()
	}
}

// startAdopted sets the shim up around an init it holds a pidfd of.
func (s *Shim) startAdopted(ctx context.Context, init proc.Identity, fd int, cn *exitListener) error {
	sub, err := s.startReaping(ctx) // for exec'd processes started from now on
	if err != nil {
		return err
	}
	status, err := s.runtimeStatus(ctx)
	if err != nil {
		sub.Close()
		return err
	}
	// The socket first, then shim.pid: a manager that sees shim.pid name
	// this shim can dial it at once.
	if s.ln, err = Listen(s.dir); err != nil {
		sub.Close()
		return err
	}
	if s.self, err = WritePid(s.dir, ShimPidFile, os.Getpid()); err != nil {
		s.ln.Close()
		sub.Close()
		return err
	}
	s.init, err = s.adoptProcess("", s.dir, ExitFile, OutputLogFile, init, status)
	if err != nil {
		s.ln.Close()
		sub.Close()
		return err
	}
	s.adoptExecs(cn)
	s.adopted = time.Now().UTC()
	close(s.created) // nothing to create: it exists
	go s.acceptLoop(ctx, s.ln)
	go s.watchAdopted(s.init, fd, cn)
	s.watchFolder(ctx)
	go s.dispatch(ctx, sub)
	s.log.WithFields(logrus.Fields{"pid": init.Pid, "status": status}).Info("adopted container")
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
// appending and its output pipes, if any, are drained into it again.
func (s *Shim) adoptProcess(id, dir, exitName, logName string, pid proc.Identity, status string) (*process, error) {
	log, err := crilog.Open(filepath.Join(dir, logName),
		crilog.Options{MaxSize: s.rec.LogMaxSize, MaxFiles: s.rec.LogMaxFiles})
	if err != nil {
		return nil, fmt.Errorf("open output log: %w", err)
	}
	pio := &procIO{log: log}
	out, errf := reopenOutput(pid.Pid)
	if out != nil {
		pio.drain(crilog.Stdout, out)
	}
	if errf != nil {
		pio.drain(crilog.Stderr, errf)
	}
	p := newProcess(id, dir, exitName, pio)
	p.status, p.pid = status, pid
	return p, nil
}

// adoptExecs takes over the exec'd processes of the dead shim: live ones
// are watched like init, ended ones get an exit record saying the status
// is unknown.
func (s *Shim) adoptExecs(cn *exitListener) {
	dir := filepath.Join(s.dir, ExecDir)
	names, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, path := range names {
		name := strings.TrimSuffix(filepath.Base(path), ".pid")
		if strings.HasSuffix(name, ".runtime") || ValidID(name) != nil {
			continue
		}
		exitName := name + ".exit.json"
		if _, err := os.Stat(filepath.Join(dir, exitName)); err == nil {
			continue
		}
		if err := s.adoptExec(cn, dir, name, exitName); err != nil {
			s.log.WithError(err).WithField("exec", name).Warn("exec'd process not adopted")
		}
	}
}

func (s *Shim) adoptExec(cn *exitListener, dir, name, exitName string) error {
	pid, err := ReadPid(dir, name+".pid")
	if err != nil {
		return err
	}
	if cn != nil {
		cn.watchPid(pid.Pid)
	}
	fd, err := OpenMember(s.rec, pid)
	if errors.Is(err, proc.ErrGone) {
		return WriteJSON(dir, exitName, &ExitRecord{Version: SchemaVersion, Pid: pid.Pid,
			Status: UnknownStatus, ExitedAt: time.Now().UTC(), Reason: ReasonNoShim})
	}
	if err != nil {
		return err
	}
	p, err := s.adoptProcess(name, dir, exitName, name+".log", pid, StatusRunning)
	if err != nil {
		unix.Close(fd)
		return err
	}
	s.mu.Lock()
	s.execs[name] = p
	s.mu.Unlock()
	go s.watchAdopted(p, fd, cn)
	return nil
}

// watchAdopted waits for an adopted process to end and records its exit:
// the true status when the process events connector delivered it,
// UnknownStatus with a reason otherwise. When init ends, exec'd processes
// still running are killed, as for a shim's own init.
func (s *Shim) watchAdopted(p *process, fd int, cn *exitListener) {
	defer unix.Close(fd)
	proc.WaitFd(fd, -1)
	_, pid, _ := p.current()
	e := reaper.Exit{Pid: pid.Pid, Status: UnknownStatus, Timestamp: time.Now()}
	reason := ReasonAdoptedUnknown
	if cn != nil {
		if status, err := cn.statusOf(pid.Pid); err == nil {
			e.Status, reason = status, ""
		} else {
			reason += " (" + err.Error() + ")"
		}
	}
	if r := p.killedBy(); r != "" && reason == "" {
		reason = r
	}
	s.record(p, e, reason)
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
