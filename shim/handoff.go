package shim

// In-place upgrade, the core's part. A front end asked to upgrade its shim
// calls Freeze: the core stops at a clean boundary (reaper held, exits
// already reaped recorded, output draining stopped between two reads) and
// describes itself in a Handoff, whose fds are dups that survive execve.
// The front end adds its own fds and state (Handoff.Front), writes the
// file, has the new binary check it, then calls Handoff.Exec: the process
// execve()s the new binary in place. The pid stays, so the new image is
// still the parent of the container's processes and their child
// subreaper (PR_SET_CHILD_SUBREAPER survives execve); a child that exited
// during the handoff is a zombie the new image's reaper collects with its
// true status. The new image calls TakeOver instead of Create or Adopt. If
// anything fails before the execve, Thaw puts the core back as it was.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/cnproc"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// HandoffVersion is the handoff format this build writes; HandoffMinVersion
// the oldest it reads. A new image refuses a handoff outside that range
// (its check mode says so before the old image execs), so the old image
// goes on serving. Version 1 is the first.
const (
	HandoffVersion    = 1
	HandoffMinVersion = 1
)

// ErrNotUpgradable: the container's shim cannot be upgraded in place (its
// front end feeds it from places a new image cannot take over).
var ErrNotUpgradable = errors.New("cannot be upgraded in place")

// errUpgrading answers input sent while an upgrade holds the core.
var errUpgrading = errors.New("the shim is handing over to its new binary (upgrade): send again")

// freezeTimeout bounds the wait for the output draining to stop.
const freezeTimeout = 5 * time.Second

// Handoff is what one image of the shim tells the next across an in-place
// execve: the container's processes, with the fds of their IO as numbers
// valid in the new image. It is written as JSON next to the records
// (store's HandoffPath) and read once by the new image.
type Handoff struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// ShimPid is the process that wrote it: only that process, after its
	// execve, may resume from it.
	ShimPid   int        `json:"shim_pid"`
	WrittenAt time.Time  `json:"written_at"`
	AdoptedAt *time.Time `json:"adopted_at,omitempty"`
	// Lock is the folder's lock, held across the handoff so that no
	// manager decides about the container meanwhile; the new image closes
	// it once it serves.
	Lock  int           `json:"lock_fd,omitempty"`
	Init  HandoffProc   `json:"init"`
	Execs []HandoffProc `json:"execs,omitempty"`
	// OOMTold is the OOM kill count the last live OOM event carried.
	OOMTold uint64 `json:"oom_told,omitempty"`
	// Front is the front end's own part (its listener and the like).
	Front json.RawMessage `json:"front,omitempty"`
	// Retired are fds the new image only closes, once it has answered
	// (CloseRetired): the old image's inotify instances (its folder
	// watch, a cgroup v2 OOM watch). The kernel's release of one waits
	// for an SRCU grace period, 10-25 ms measured; left close-on-exec,
	// that release would run in the execve's return to user space, before
	// the new image's first instruction. The new image makes its own.
	Retired []int `json:"retired_fds,omitempty"`

	fds  []int    // dups made for the handoff: kept over execve, closed on abandon
	lock *os.File // the folder's lock
}

// HandoffProc is one process in a Handoff. An fd of 0 means none.
type HandoffProc struct {
	ID     string            `json:"id,omitempty"`
	Status string            `json:"status"`
	Pid    proc.Identity     `json:"pid"`
	Exit   *store.ExitRecord `json:"exit,omitempty"`
	Killed string            `json:"killed,omitempty"`
	// NoLog and LogPath are its IO's log (IO.NoLog, IO.LogPath).
	NoLog   bool   `json:"no_log,omitempty"`
	LogPath string `json:"log_path,omitempty"`
	// Read ends of its output pipes, or the pty master; the write end of
	// its stdin pipe.
	Stdout  int `json:"stdout_fd,omitempty"`
	Stderr  int `json:"stderr_fd,omitempty"`
	Console int `json:"console_fd,omitempty"`
	Stdin   int `json:"stdin_fd,omitempty"`
	// PidFd is set for an adopted process, which the shim cannot reap.
	PidFd int `json:"pidfd,omitempty"`
}

// freezer is the state of an upgrade's hold on the core.
type freezer struct {
	finishing sync.WaitGroup // exits being recorded (goFinish)
	gate      sync.RWMutex   // write-held while frozen: adopted exits wait
	mu        sync.Mutex
	frozen    bool
	release   func() // the reaper's hold
	stop      func() // stops dispatch (runDispatch)
	watchOff  bool   // the folder watch's setting before the freeze
	lock      *os.File
}

// runDispatch starts the dispatcher of the reaper's exits. It runs before
// Freeze can (started calls it before the container is usable) or under
// s.frz.mu (thawLocked).
func (s *Shim) runDispatch() {
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	s.frz.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		s.dispatch(ctx, s.sub)
	}()
}

// Freeze stops the core for an upgrade and describes it. It refuses a
// container being created, one whose front end gave IO sinks or an input
// source (ErrNotUpgradable), and a folder a manager has locked. Once it
// returned, nothing is reaped, no exit recorded and no output read until
// Thaw, or until the process execs (Handoff.Exec). The caller must make
// sure no operation runs meanwhile (a front end stops serving first).
func (s *Shim) Freeze(ctx context.Context) (*Handoff, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if err := s.upgradable(); err != nil {
		return nil, err
	}
	lock, err := s.st.Lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w: try again", s.id, err)
	}
	s.frz.mu.Lock()
	defer s.frz.mu.Unlock()
	if s.frz.frozen {
		lock.Close()
		return nil, fmt.Errorf("%w: an upgrade is already under way", ErrInvalid)
	}
	s.frz.lock = lock
	s.frz.release = s.mon.Hold()
	s.frz.stop()
	for _, e := range s.sub.Drain() {
		s.dispatchExit(e)
	}
	s.frz.finishing.Wait() // every exit reaped so far is recorded
	s.frz.gate.Lock()
	s.frz.frozen = true
	s.frz.watchOff = s.watch.off.Swap(true)
	for _, p := range s.processes() {
		if err := p.io.freezeOutput(); err != nil {
			s.thawLocked()
			return nil, err
		}
	}
	h, err := s.snapshot()
	if err != nil {
		s.thawLocked()
		return nil, err
	}
	return h, nil
}

// Thaw undoes Freeze after an upgrade was abandoned: h's fds are closed and
// the core serves on as before.
func (s *Shim) Thaw(h *Handoff) {
	if h != nil {
		h.closeFds()
	}
	s.frz.mu.Lock()
	defer s.frz.mu.Unlock()
	if s.frz.frozen {
		s.thawLocked()
	}
}

// thawLocked restarts what Freeze stopped; s.frz.mu is held.
func (s *Shim) thawLocked() {
	for _, p := range s.processes() {
		p.io.thawOutput()
	}
	s.watch.off.Store(s.frz.watchOff)
	s.frz.frozen = false
	s.frz.gate.Unlock()
	s.runDispatch()
	s.frz.release()
	s.frz.lock.Close()
}

// processes lists init and the exec'd processes kept.
func (s *Shim) processes() []*process {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := []*process{s.init}
	for _, p := range s.execs {
		ps = append(ps, p)
	}
	return ps
}

// upgradable refuses what a new image could not take over: a stop under
// way, and IO a front end feeds (its sinks and input sources live in the
// front end's memory).
func (s *Shim) upgradable() error {
	if s.stopping.Load() > 0 {
		// Stop's grace period and SIGKILL run in this image's memory.
		return fmt.Errorf("container %s %w while it is being stopped: upgrade it once the stop has ended", s.id, ErrNotUpgradable)
	}
	for _, p := range s.processes() {
		if p.io == nil {
			return fmt.Errorf("exec %q is still starting: %w", p.id, errUpgrading)
		}
		p.io.mu.Lock()
		fed := p.io.fed || p.io.stdout != nil || p.io.stderr != nil
		p.io.mu.Unlock()
		if fed {
			return fmt.Errorf("container %s %w: its front end copies the IO of %s itself", s.id, ErrNotUpgradable, procName(p.id))
		}
	}
	return nil
}

func procName(exec string) string {
	if exec == "" {
		return "init"
	}
	return "exec " + exec
}

// freezeOutput stops the draining of the process's output between two
// reads: what was read is in the log, what was not stays in the pipe or
// pty for the new image. The read ends stay open.
func (pio *procIO) freezeOutput() error {
	pio.mu.Lock()
	pio.frozen = true
	outs := slices.Clone(pio.outs)
	pio.mu.Unlock()
	for _, e := range outs {
		if err := e.f.SetReadDeadline(time.Unix(1, 0)); err != nil {
			return fmt.Errorf("stop draining %s: %w", e.f.Name(), err)
		}
	}
	done := make(chan struct{})
	go func() { pio.copies.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(freezeTimeout):
		return errors.New("the output draining did not stop: a log write is stuck")
	}
}

// thawOutput restarts the draining freezeOutput stopped.
func (pio *procIO) thawOutput() {
	pio.mu.Lock()
	if !pio.frozen {
		pio.mu.Unlock()
		return
	}
	pio.frozen = false
	outs := slices.Clone(pio.outs)
	pio.mu.Unlock()
	for _, e := range outs {
		e.f.SetReadDeadline(time.Time{})
		pio.copies.Add(1)
		go pio.runCopy(e)
	}
}

// snapshot describes the frozen core.
func (s *Shim) snapshot() (*Handoff, error) {
	h := &Handoff{Version: HandoffVersion, ID: s.id, ShimPid: os.Getpid(), WrittenAt: time.Now().UTC(),
		lock: s.frz.lock}
	if !s.adopted.IsZero() {
		t := s.adopted
		h.AdoptedAt = &t
	}
	s.mu.Lock()
	h.OOMTold = s.oomTold
	s.mu.Unlock()
	var err error
	if h.Lock, err = h.Dup(s.frz.lock); err != nil {
		return nil, err
	}
	if h.Init, err = h.proc(s.init); err != nil {
		h.closeFds()
		return nil, err
	}
	for _, fd := range slowCloseFds() {
		n, err := h.dupFd(fd)
		if err != nil {
			h.closeFds()
			return nil, err
		}
		h.Retired = append(h.Retired, n)
	}
	s.mu.Lock()
	var running, finished []*process
	for _, p := range s.execs {
		if status, _, _ := p.current(); status != StatusStopped {
			running = append(running, p)
		}
	}
	for _, p := range s.finished {
		if s.execs[p.id] == p {
			finished = append(finished, p)
		}
	}
	s.mu.Unlock()
	sort.Slice(running, func(i, j int) bool { return running[i].id < running[j].id })
	for _, p := range append(running, finished...) {
		hp, err := h.proc(p)
		if err != nil {
			h.closeFds()
			return nil, err
		}
		h.Execs = append(h.Execs, hp)
	}
	return h, nil
}

// proc describes one process, dup'ing the fds of its IO.
func (h *Handoff) proc(p *process) (HandoffProc, error) {
	p.mu.Lock()
	hp := HandoffProc{ID: p.id, Status: p.status, Pid: p.pid, Exit: p.exit, Killed: p.killed}
	pidfd := p.pidfd
	p.mu.Unlock()
	if hp.Status == StatusStopped {
		return hp, nil
	}
	pio := p.io
	pio.mu.Lock()
	outs, stdin, isConsole := slices.Clone(pio.outs), pio.stdin, pio.console != nil
	hp.NoLog, hp.LogPath = pio.log == nil, pio.logPath
	pio.mu.Unlock()
	var err error
	if pidfd > 0 {
		if hp.PidFd, err = h.dupFd(pidfd); err != nil {
			return hp, err
		}
	}
	for _, e := range outs {
		fd, err := h.Dup(e.f)
		if err != nil {
			return hp, err
		}
		switch {
		case isConsole:
			hp.Console = fd
		case e.stream == crilog.Stderr:
			hp.Stderr = fd
		default:
			hp.Stdout = fd
		}
	}
	if stdin != nil && !isConsole {
		f, ok := stdin.(*os.File)
		if !ok {
			return hp, fmt.Errorf("%w: the stdin of %s is not a file", ErrNotUpgradable, procName(p.id))
		}
		if hp.Stdin, err = h.Dup(f); err != nil {
			return hp, err
		}
	}
	return hp, nil
}

// Dup adds a dup of c's fd to the handoff (a front end's listener, say) and
// returns its number, which stays valid in the new image.
func (h *Handoff) Dup(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { n, derr = h.dupFd(int(fd)) }); err != nil {
		return 0, err
	}
	return n, derr
}

// dupFd dups fd (close-on-exec until Exec clears it) and records it.
func (h *Handoff) dupFd(fd int) (int, error) {
	n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return 0, fmt.Errorf("dup fd %d for the handoff: %w", fd, err)
	}
	h.fds = append(h.fds, n)
	return n, nil
}

// slowCloseFds lists this process's fds whose last close waits on the
// kernel: inotify and fanotify instances (fsnotify_destroy_group flushes
// the mark destruction, an SRCU grace period). Found by what /proc says
// they are, whoever made them.
func slowCloseFds() []int {
	all, _ := proc.Fds(0)
	var fds []int
	for _, fd := range all {
		if fd.Target == "anon_inode:inotify" || fd.Target == "anon_inode:[fanotify]" {
			fds = append(fds, fd.Num)
		}
	}
	return fds
}

// CloseRetired closes the old image's retired fds (Retired) in the
// background. A front end calls it once it has answered the upgrade, so
// the kernel's slow release runs after the answer, on a thread of its own.
func (h *Handoff) CloseRetired() {
	fds := h.Retired
	h.Retired = nil
	if len(fds) == 0 {
		return
	}
	go func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
}

func (h *Handoff) closeFds() {
	for _, fd := range h.fds {
		unix.Close(fd)
	}
	h.fds = nil
}

// Write writes the handoff to path (a temporary file renamed into place).
func (h *Handoff) Write(path string) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write handoff: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write handoff: %w", err)
	}
	return nil
}

// Exec replaces the process image with binary (argv, env), keeping the
// pid and handing over h's fds. It returns only on failure, with the fds
// close-on-exec again; the caller then calls Thaw.
func (h *Handoff) Exec(binary string, argv, env []string) error {
	holdPoint("shim-upgrade-before-exec") // tests only: an exit during the handoff
	for _, fd := range h.fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			h.cloexec()
			return fmt.Errorf("hand fd %d over: %w", fd, err)
		}
	}
	err := syscall.Exec(binary, argv, env)
	h.cloexec()
	return fmt.Errorf("exec %s: %w", binary, err)
}

func (h *Handoff) cloexec() {
	for _, fd := range h.fds {
		unix.CloseOnExec(fd)
	}
}

// ReadHandoff reads and checks a handoff file: its version (one outside
// HandoffMinVersion..HandoffVersion gives an error wrapping
// store.ErrVersion), its container ID and its processes' states. It is
// what the new binary's check mode runs before the old image execs it.
func ReadHandoff(path, id string) (*Handoff, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read handoff: %w", err)
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("handoff %s: %w: %v", path, store.ErrCorrupt, err)
	}
	if v.Version < HandoffMinVersion || v.Version > HandoffVersion {
		return nil, fmt.Errorf("handoff version %d: %w: this shim reads versions %d to %d; upgrade to a binary that reads it",
			v.Version, store.ErrVersion, HandoffMinVersion, HandoffVersion)
	}
	var h Handoff
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("handoff %s: %w: %v", path, store.ErrCorrupt, err)
	}
	if h.ID != id {
		return nil, fmt.Errorf("handoff %s is for container %q, not %q: %w", path, h.ID, id, store.ErrCorrupt)
	}
	if err := h.Init.check(false); err != nil {
		return nil, fmt.Errorf("handoff %s: init: %w", path, err)
	}
	for _, p := range h.Execs {
		if err := p.check(true); err != nil {
			return nil, fmt.Errorf("handoff %s: exec %q: %w", path, p.ID, err)
		}
	}
	return &h, nil
}

// check validates one process of a handoff.
func (p HandoffProc) check(exec bool) error {
	if exec {
		if err := ids.ValidID(p.ID); err != nil {
			return err
		}
	}
	switch p.Status {
	case StatusCreated, StatusRunning, StatusPaused:
		if p.Pid.Pid <= 0 {
			return fmt.Errorf("%w: no pid", store.ErrCorrupt)
		}
	case StatusStopped:
	default:
		return fmt.Errorf("%w: status %q", store.ErrCorrupt, p.Status)
	}
	for _, fd := range []int{p.Stdout, p.Stderr, p.Console, p.Stdin, p.PidFd} {
		if fd != 0 && fd < 3 {
			return fmt.Errorf("%w: fd %d", store.ErrCorrupt, fd)
		}
	}
	return nil
}

// TakeOver is the new image's Create or Adopt after an in-place upgrade:
// it takes the container over from h, written by this very process before
// its execve, and serves it as the old image did. An exit that happened
// during the handoff is reaped now and recorded with its true status
// (adopted processes, which are not the shim's children: UnknownStatus
// unless the process events connector saw it). It returns init's pid.
func (s *Shim) TakeOver(ctx context.Context, h *Handoff) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	crashPoint("shim-upgrade-after-exec") // tests only: a new image that dies
	for _, fd := range h.Retired {
		unix.CloseOnExec(fd) // nothing this image starts inherits them
	}
	if h.ID != s.id || h.ShimPid != os.Getpid() {
		return 0, fmt.Errorf("%w: handoff of container %s by pid %d: only that container's shim resumes from it, after its own execve",
			ErrInvalid, h.ID, h.ShimPid)
	}
	var err error
	if s.self, err = s.st.ReadShimPid(); err != nil || s.self.Pid != os.Getpid() {
		if s.self, err = s.st.WriteShimPid(os.Getpid()); err != nil {
			return 0, err
		}
	}
	if h.AdoptedAt != nil {
		s.adopted = *h.AdoptedAt
	}
	watch, err := s.resumeAll(h)
	if err != nil {
		return 0, err
	}
	if status, pid, _ := s.init.current(); status != StatusStopped {
		s.loadCgroup(pid.Pid) // the OOM watch (started) needs it
		s.mu.Lock()
		s.oomTold = max(s.oomTold, h.OOMTold)
		s.mu.Unlock()
	}
	s.started()
	watch()
	if h.Lock > 0 {
		unix.Close(h.Lock)
	}
	_, pid, _ := s.init.current()
	s.log.WithFields(logrus.Fields{"pid": pid.Pid, "since_handoff_ms": float64(time.Since(h.WrittenAt).Microseconds()) / 1000}).
		Info("took the container over from the previous binary (upgrade)")
	return pid.Pid, nil
}

// resumeAll rebuilds the processes of h and registers the live ones for
// their exits; the returned function starts the watchers of adopted ones.
func (s *Shim) resumeAll(h *Handoff) (func(), error) {
	var adopted []*process
	take := func(hp HandoffProc, files store.Proc) (*process, error) {
		p, err := s.resumeProcess(hp, files)
		if err == nil && hp.PidFd > 0 && hp.Status != StatusStopped {
			adopted = append(adopted, p)
		}
		return p, err
	}
	var err error
	if s.init, err = take(h.Init, s.st.Init()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, hp := range h.Execs {
		p, err := take(hp, s.st.Exec(hp.ID))
		if err != nil {
			return nil, fmt.Errorf("exec %q: %w", hp.ID, err)
		}
		s.execs[hp.ID] = p
		if hp.Status == StatusStopped {
			s.finished = append(s.finished, p)
		}
	}
	for _, p := range append([]*process{s.init}, s.execsLocked()...) {
		if status, pid, _ := p.current(); status != StatusStopped && p.pidfd == 0 {
			s.byPid[pid.Pid] = p
		}
	}
	return func() { s.watchResumed(adopted) }, nil
}

func (s *Shim) execsLocked() []*process {
	ps := make([]*process, 0, len(s.execs))
	for _, p := range s.execs {
		ps = append(ps, p)
	}
	return ps
}

// watchResumed watches adopted processes again, by the pidfds handed over.
func (s *Shim) watchResumed(adopted []*process) {
	if len(adopted) == 0 {
		return
	}
	cn, err := cnproc.Listen()
	if err != nil {
		s.log.WithError(err).Warn("exit statuses of adopted processes will be unknown")
		cn = nil
	}
	for _, p := range adopted {
		_, pid, _ := p.current()
		if cn != nil {
			cn.Watch(pid.Pid)
		}
		go s.watchAdopted(p, p.pidfd, cn, handedTracer(cn, pid.Pid))
	}
}

// resumeProcess rebuilds one process from the handoff.
func (s *Shim) resumeProcess(hp HandoffProc, files store.Proc) (*process, error) {
	if hp.Status == StatusStopped {
		p := &process{id: hp.ID, files: files, io: &procIO{closed: true}, status: StatusStopped,
			pid: hp.Pid, exit: hp.Exit, killed: hp.Killed, done: make(chan struct{})}
		if p.exit == nil {
			p.exit, _ = files.ReadExit()
		}
		close(p.done)
		return p, nil
	}
	pio, err := s.openIO(files, IO{NoLog: hp.NoLog, LogPath: hp.LogPath})
	if err != nil {
		return nil, err
	}
	if hp.PidFd > 0 {
		pio.warn = s.warnDroppedAdopted
		unix.CloseOnExec(hp.PidFd)
	}
	if hp.Stdout > 0 {
		pio.drain(crilog.Stdout, handedFile(hp.Stdout, "stdout"))
	}
	if hp.Stderr > 0 {
		pio.drain(crilog.Stderr, handedFile(hp.Stderr, "stderr"))
	}
	if hp.Console > 0 {
		c, rw, err := consoleFromFd(hp.Console)
		if err != nil {
			return nil, err
		}
		pio.setConsole(c, rw)
	}
	if hp.Stdin > 0 {
		pio.stdin = handedFile(hp.Stdin, "stdin")
	}
	p := &process{id: hp.ID, files: files, io: pio, status: StatusCreated, pid: hp.Pid,
		killed: hp.Killed, pidfd: hp.PidFd, done: make(chan struct{})}
	if hp.Status != StatusCreated {
		p.startJournal.Do(func() {}) // the previous image journaled its start
	}
	for _, to := range statusPath(hp.Status) {
		if err := p.transition(to); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// statusPath is the moves from created to status.
func statusPath(status string) []string {
	switch status {
	case StatusRunning:
		return []string{StatusRunning}
	case StatusPaused:
		return []string{StatusRunning, StatusPaused}
	}
	return nil
}

// handedFile takes an fd handed over by the previous image, close-on-exec
// from now on (a pipe's end is non-blocking: Go's poller serves it).
func handedFile(fd int, name string) *os.File {
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// holdPoint waits while TETHER_HOLD_POINT is "NAME=PATH" for this point
// and PATH does not exist yet (at most a minute). It exists for the
// upgrade tests, which make a process exit while the handoff is held open,
// and does nothing otherwise.
func holdPoint(name string) {
	v, ok := strings.CutPrefix(os.Getenv("TETHER_HOLD_POINT"), name+"=")
	if !ok || v == "" {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(v); err == nil {
			return
		}
	}
}
