// Package shim is the shim core: everything that runs inside a shim
// process for one container, whoever drives it. It creates the container
// through the OCI runtime (or adopts one whose first shim died), reaps its
// processes as child subreaper, drains their output into logs and into
// the sinks a front end gives, writes every exit record durably before
// telling anyone, and answers the operations of the Shim type.
//
// It knows nothing of who drives it: tether's control socket
// (shim/control), containerd's task service and podman's monitor contract
// are front ends, each a thin adapter over this API. It never imports the
// manager (package runtime): the manager may be dead.
//
// # Who calls what, in which order
//
//	s, err := shim.New(ctx, shim.Options{Store: folder, ...}) // once per process: subreaper + reaper
//	defer s.Close()
//	// start serving now if you like: State answers StatusCreating and
//	// other operations fail until Create or Adopt has returned.
//	pid, err := s.Create(ctx)   // or s.Adopt(ctx) for an orphan; exactly one of them, once
//	events := s.Subscribe()     // exits of init and exec'd processes, after their records are durable; OOM kills
//	s.Start(ctx)                // then Exec, Kill, Wait, Pause, Resume, Attach, Resize, CloseStdin, Pids...
//	s.Delete(ctx, force)        // last: the container and the folder are gone; Close, then exit
//
// A process may hold one Shim only: New makes the process a child
// subreaper and its reaper owns every wait4 in the process (see package
// reaper); commands run through the OCI binding are reaped by it too.
// Every method is safe for concurrent use.
package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/store"
)

// stashAge is how long an exit of a pid nobody claimed is kept, for the
// exec whose process ends before its pid file was read.
const stashAge = time.Minute

// Sentinels the core returns (errors.Is); they are the shared ones.
var (
	ErrNotFound             = errdefs.ErrNotFound
	ErrExists               = errdefs.ErrExists
	ErrNotRunning           = errdefs.ErrNotRunning
	ErrRunning              = errdefs.ErrRunning
	ErrInvalid              = errdefs.ErrInvalid
	ErrCommandNotFound      = errdefs.ErrCommandNotFound
	ErrCommandNotExecutable = errdefs.ErrCommandNotExecutable
)

// Options configure a Shim. Store is required; every other field has a
// usable zero value.
type Options struct {
	// Store is the container's folder: the core writes the shim's and the
	// processes' pid records, the exit records (durably, before anyone is
	// told) and, unless IO says otherwise, the output logs there.
	Store *store.Folder
	// Record describes the container: bundle, OCI runtime binary, its
	// --root (RuntimeRoot) and extra global arguments (RuntimeArgs), the
	// runtime call timeout, terminal and stdin of init, log rotation. Nil
	// means: read it from Store (tether's manager wrote it there). A front
	// end that gives one should also write it (Store.WriteRecord), so a
	// later adopter and managers find it.
	Record *store.Record
	// InitIO says where init's output goes and where its input comes from.
	// The zero value drains output into the store's output.log (CRI
	// format) and, when Record.Stdin, keeps a stdin pipe for WriteStdin.
	InitIO IO
	// Log is where the core logs; nil means logrus's standard logger.
	Log *logrus.Entry
	// OnRestore, when not nil, is called after the core has made its
	// folder again (it was removed under the running shim) and rewritten
	// the records it holds; a front end that keeps files there (tether's
	// control socket and shim log) makes them again.
	OnRestore func(ctx context.Context) error
	// NoFolderWatch turns off the restoring of a removed folder.
	NoFolderWatch bool
	// NoPivot, NoNewKeyring and ExtraFiles are passed to the runtime's
	// create of init (--no-pivot, --no-new-keyring, --preserve-fds: the
	// files become init's fds 3, 4...), as podman asks of its monitor.
	NoPivot, NoNewKeyring bool
	ExtraFiles            []*os.File
}

// IO says where a process's output goes and where its input comes from.
// Terminal and stdin themselves are chosen by Record (init) or ExecConfig
// (an exec'd process).
type IO struct {
	// NoLog: output is not written to a CRI log file at all; only the
	// sinks and live followers get it.
	NoLog bool
	// LogPath is the CRI-format log file ("" means the store's: output.log
	// for init, exec/NAME.log for an exec'd process), rotated with the
	// record's LogMaxSize and LogMaxFiles. A Kubernetes "k8s-file" log is
	// this format.
	LogPath string
	// Stdout and Stderr, when not nil, receive the output as it is read,
	// after the log (for example containerd's stdout and stderr FIFOs).
	// With a terminal everything is stdout. A sink's Write runs on the
	// draining goroutine: a sink that blocks holds the container's output
	// up. A failing sink is dropped and logged; the log goes on.
	Stdout, Stderr io.Writer
	// Stdin, when not nil, is copied into the process's input until it
	// ends, then the input is closed. It needs stdin (or a terminal).
	Stdin io.Reader
}

// Shim is the core serving one container. Make it with New.
type Shim struct {
	id      string
	st      *store.Folder
	rec     *store.Record
	opts    Options
	rt      *oci.Runtime
	mon     *reaper.Monitor
	sub     *reaper.Subscription
	log     *logrus.Entry
	self    proc.Identity
	init    *process
	created chan struct{} // closed once Create or Adopt has succeeded
	ctx     context.Context
	cancel  context.CancelFunc
	watch   folderWatch // restores the state folder if it is removed
	adopted time.Time   // when this shim adopted the container; zero if it created it
	events  events
	// waitFd waits on a pidfd (proc.WaitFd when nil); tests inject
	// failures through it.
	waitFd func(fd int, d time.Duration) bool
	// delMu serialises Delete (a manager's and the auto-remove's may
	// meet); deleted says one has removed the container.
	delMu   sync.Mutex
	deleted bool

	mu       sync.Mutex
	execs    map[string]*process
	finished []*process // finished execs still kept, oldest first
	byPid    map[int]*process
	stash    map[int]reaper.Exit
	begun    bool            // Create or Adopt was called
	cg       *cgroups.Cgroup // init's cgroups, nil when they could not be found
	oomTold  uint64          // the OOM kill count the last EventOOM carried

	frz      freezer      // an upgrade's hold on the core (handoff.go)
	stopping atomic.Int32 // stops under way (Stop goes on after its caller left)
}

// New prepares the core for the container in opts.Store: it lowers its
// own OOM score, reads the record (unless given), makes the process a
// child subreaper and starts its reaper. It creates nothing: call Create
// or Adopt next. ctx bounds the core's own goroutines; Close ends them.
func New(ctx context.Context, opts Options) (*Shim, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: shim options need a Store", ErrInvalid)
	}
	s := &Shim{id: opts.Store.ID(), st: opts.Store, opts: opts, log: opts.Log, rec: opts.Record,
		execs: map[string]*process{}, byPid: map[int]*process{},
		stash: map[int]reaper.Exit{}, created: make(chan struct{})}
	if s.log == nil {
		s.log = logrus.NewEntry(logrus.StandardLogger())
	}
	s.protectFromOOM()
	if s.rec == nil {
		rec, err := s.st.ReadRecord()
		if err != nil {
			return nil, fmt.Errorf("read container record: %w", err)
		}
		s.rec = rec
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if err := s.startReaping(s.ctx); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// Close ends the core's goroutines (reaper, folder watch). Call it once
// the container is deleted, or when the process exits anyway; the
// container's processes are not touched.
func (s *Shim) Close() { s.cancel() }

// StartCommand starts a helper command of the front end (podman's exit
// command) through the core's reaper, which owns every wait4 of the
// process, and returns the function that waits for its exit status. It
// needs New to have returned and Close not to have been called.
func (s *Shim) StartCommand(cmd *exec.Cmd) (wait func() (int, error), err error) {
	return s.mon.Start(cmd)
}

// ID is the container's ID.
func (s *Shim) ID() string { return s.id }

// Record is the container's record.
func (s *Shim) Record() *store.Record { return s.rec }

// begin claims the one Create or Adopt of a Shim.
func (s *Shim) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.begun {
		return fmt.Errorf("%w: Create or Adopt was already called", ErrInvalid)
	}
	s.begun = true
	return nil
}

// Create writes the shim's pid record, runs the runtime's create for init
// with opts.InitIO, and records init's pid. It returns init's pid. On
// error nothing is left: the runtime's container is deleted and every
// process it left below the shim killed.
func (s *Shim) Create(ctx context.Context) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	var err error
	if s.self, err = s.st.WriteShimPid(os.Getpid()); err != nil {
		return 0, err
	}
	if err := s.createInit(ctx); err != nil {
		s.killLeftovers()
		return 0, err
	}
	s.started()
	_, pid, _ := s.init.current()
	if s.rec.RestoredFrom != "" {
		s.journal(store.Event{Type: store.EventRestored, Pid: pid.Pid, ImagePath: s.rec.RestoredFrom})
	} else {
		s.journal(store.Event{Type: store.EventCreated, Pid: pid.Pid})
	}
	return pid.Pid, nil
}

// started marks the container usable and starts the services that need it.
func (s *Shim) started() {
	s.runDispatch()
	close(s.created)
	if !s.opts.NoFolderWatch {
		s.watchFolder(s.ctx)
	}
	go s.watchOOM(s.ctx)
}

// startReaping makes the process a child subreaper, starts its reaper and
// the runtime binding that runs commands through it. The subscription is
// taken before any child exists, so no exit is missed; dispatch consumes
// it.
func (s *Shim) startReaping(ctx context.Context) error {
	if err := reaper.SetSubreaper(); err != nil {
		return err
	}
	s.mon = reaper.New()
	s.sub = s.mon.Subscribe()
	s.mon.Run(ctx)
	s.rt = &oci.Runtime{Command: s.rec.Runtime, Root: s.rec.RuntimeRoot,
		Args: s.rec.RuntimeArgs, Monitor: s.mon, Timeout: s.rec.RuntimeTimeout()}
	return nil
}

// createInit runs the runtime's create and records init's pid.
func (s *Shim) createInit(ctx context.Context) error {
	initp := s.st.Init()
	pio, err := s.openIO(initp, s.opts.InitIO)
	if err != nil {
		return err
	}
	s.init = s.newProcess("", initp, pio)
	since := time.Now()
	pidFile := initp.ScratchPid()
	err = s.withIO(ctx, pio, s.rec.Terminal, s.rec.Stdin, s.opts.InitIO.Stdin, initp,
		func(io *stdioFiles, consoleSocket string) error {
			return s.makeInit(ctx, io, consoleSocket, pidFile)
		})
	if err != nil {
		pio.close()
		if derr := s.rt.Delete(context.WithoutCancel(ctx), s.id, &oci.DeleteOpts{Force: true}); derr != nil && !errors.Is(derr, oci.ErrNotFound) {
			s.log.WithError(derr).Warn("runtime delete after a failed create")
		}
		return fromOCI(err)
	}
	crashPoint("shim-after-runtime-create") // recovery tests only
	if pid, err := oci.ReadPidFile(pidFile); err == nil {
		s.loadCgroup(pid) // before track: init may exit at once
	}
	if err := s.track(s.init, pidFile, since); err != nil {
		return err
	}
	if s.rec.RestoredFrom != "" {
		// A restored init runs at once; it may have exited already.
		s.init.transition(StatusRunning)
	}
	crashPoint("shim-after-init-pid") // recovery tests only
	return nil
}

// makeInit runs the runtime's create, or its restore from the checkpoint
// the record names, with io as the stdio of init.
func (s *Shim) makeInit(ctx context.Context, io *stdioFiles, consoleSocket, pidFile string) error {
	if s.rec.RestoredFrom == "" {
		opts := &oci.CreateOpts{PidFile: pidFile, NoPivot: s.opts.NoPivot,
			NoNewKeyring: s.opts.NoNewKeyring, ExtraFiles: s.opts.ExtraFiles}
		setCreateIO(opts, io, consoleSocket)
		return s.createRuntime().Create(ctx, s.id, s.rec.Bundle, opts)
	}
	opts := &oci.RestoreOpts{ImagePath: s.rec.RestoredFrom, PidFile: pidFile,
		IO: ociIO(io), ConsoleSocket: consoleSocket,
		WorkPath: s.st.CRIUWorkDir(), NoSubreaper: true}
	if err := os.MkdirAll(opts.WorkPath, 0o700); err != nil {
		return err
	}
	return s.createRuntime().Restore(ctx, s.id, s.rec.Bundle, opts)
}

// openIO opens the log of a process, unless its IO says there is none.
func (s *Shim) openIO(p store.Proc, io IO) (*procIO, error) {
	pio := &procIO{warn: s.warnDropped, stdout: io.Stdout, stderr: io.Stderr, sinkWarn: s.warnSink}
	if io.NoLog {
		return pio, nil
	}
	path := io.LogPath
	if path == "" {
		path = p.LogPath()
	}
	log, err := crilog.Open(path, crilog.Options{MaxSize: s.rec.LogMaxSize, MaxFiles: s.rec.LogMaxFiles})
	if err != nil {
		return nil, fmt.Errorf("open output log: %w", err)
	}
	pio.log, pio.logPath = log, io.LogPath
	return pio, nil
}

// fromOCI turns the OCI binding's command errors into the shared
// sentinels, keeping the runtime's message.
func fromOCI(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, oci.ErrCommandNotFound):
		return fmt.Errorf("%w: %w", ErrCommandNotFound, err)
	case errors.Is(err, oci.ErrCommandNotExecutable):
		return fmt.Errorf("%w: %w", ErrCommandNotExecutable, err)
	}
	return err
}

// track reads a process's pid file and tracks that pid.
func (s *Shim) track(p *process, pidFile string, since time.Time) error {
	pid, err := oci.ReadPidFile(pidFile)
	if err != nil {
		return fmt.Errorf("read pid file: %w", err)
	}
	return s.trackPid(p, pid, since)
}

// trackPid records the identity of the process's pid and registers it for
// its exit, taking the exit from the stash if it came first.
func (s *Shim) trackPid(p *process, pid int, since time.Time) error {
	ident, err := p.files.WritePid(pid)
	if err != nil && !errors.Is(err, proc.ErrGone) {
		return err
	}
	if err != nil { // already gone: keep what we know
		ident = proc.Identity{Pid: pid}
	}
	p.setPid(ident)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.stash[pid]; ok && !e.Timestamp.Before(since) {
		delete(s.stash, pid)
		s.frz.finishing.Add(1)
		go func() {
			defer s.frz.finishing.Done()
			s.finish(p, e)
		}()
		return nil
	}
	s.byPid[pid] = p
	return nil
}

// dispatch is the one consumer of the reaper's exits in the shim. It
// returns when ctx ends: then the subscription is closed, unless the core
// goes on (an upgrade stopped dispatch only; see freeze).
func (s *Shim) dispatch(ctx context.Context, sub *reaper.Subscription) {
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				sub.Close()
			}
			return
		}
		s.dispatchExit(e)
	}
}

// dispatchExit hands an exit to the process it belongs to, or stashes it.
func (s *Shim) dispatchExit(e reaper.Exit) {
	s.mu.Lock()
	p, ok := s.byPid[e.Pid]
	if ok {
		delete(s.byPid, e.Pid)
	} else {
		s.stashExit(e)
	}
	s.mu.Unlock()
	if ok {
		s.goFinish(p, e)
	}
}

// goFinish records an exit on its own goroutine, counted so that an
// upgrade waits for every exit already reaped to be recorded.
func (s *Shim) goFinish(p *process, e reaper.Exit) {
	s.frz.finishing.Add(1)
	go func() {
		defer s.frz.finishing.Done()
		s.finish(p, e)
	}()
}

// stashExit keeps an unclaimed exit for a while; s.mu is held.
func (s *Shim) stashExit(e reaper.Exit) {
	for pid, old := range s.stash {
		if e.Timestamp.Sub(old.Timestamp) > stashAge {
			delete(s.stash, pid)
		}
	}
	s.stash[e.Pid] = e
}

// finish records a process's exit. When init ends, exec'd processes still
// running are killed: they cannot outlive their container.
func (s *Shim) finish(p *process, e reaper.Exit) {
	reason := ""
	if p != s.init {
		reason = s.execExitReason(p, e)
	} else {
		reason = p.killedBy() // a checkpoint that ended it says so
	}
	s.record(p, e, reason)
}

// record writes p's exit record, cleans up after it (kills the exec'd
// processes when init ended; prunes old execs), wakes its waiters and only
// then publishes the event, so that nobody sees a half-finished state.
func (s *Shim) record(p *process, e reaper.Exit, reason string) {
	var kills uint64
	if p == s.init {
		kills = s.oomKills()
	}
	rec, err := p.exited(e, reason, kills)
	if err != nil {
		s.log.WithError(err).Error("exit record not written")
	}
	s.log.WithFields(logrus.Fields{"exec": p.id, "pid": e.Pid, "status": e.Status, "reason": rec.Reason}).Info("process exited")
	if p == s.init {
		s.killExecs()
	} else {
		s.execFinished(p)
	}
	// the OOM kill that ended init (or one not told yet) comes first in
	// the journal and among the events, after the record holding it
	oom := p == s.init && kills > 0 && s.claimOOM(kills)
	if oom {
		s.journalOOM(kills, rec.ExitedAt)
	}
	s.journalExit(p, rec) // before waking: whoever was told finds it in the journal
	p.wake()
	if oom {
		s.publishOOM(kills, rec.ExitedAt)
	}
	s.events.publish(Event{Kind: EventExit, Exec: p.id, Exit: *rec})
}

// killExecs kills the exec'd processes still running once init has exited
// (with a private pid namespace the kernel has done it already).
func (s *Shim) killExecs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.execs {
		p.kill(syscall.SIGKILL, ReasonInitExited)
	}
}
