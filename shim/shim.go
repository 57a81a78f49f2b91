// Package shim is what runs inside tether-shim, one process per container:
// it creates the container through the OCI runtime, reaps its processes as
// child subreaper, drains their output into the log, writes their exit
// records before telling anyone, and answers the control socket. It also
// holds the records' format and the client a manager uses to talk to a
// shim.
//
// It does not decide where shims live or how they are found again after a
// restart: that is package runtime.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/runtime/oci"
)

// stashAge is how long an exit of a pid nobody claimed is kept, for the
// exec whose process ends before its pid file was read.
const stashAge = time.Minute

// Config names the container a shim serves. The manager has already written
// its Record into Root/ID.
type Config struct {
	Root string
	ID   string
	// Ready, when not nil, receives one JSON line (ReadyMessage) once the
	// container is created or creation failed, and is then closed.
	Ready *os.File
	// Log is where the shim logs; nil means logrus's standard logger.
	Log *logrus.Entry
}

// ReadyMessage is what the shim tells the process that started it.
type ReadyMessage struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// Shim serves one container.
type Shim struct {
	id, dir string
	rec     *Record
	rt      *oci.Runtime
	mon     *reaper.Monitor
	log     *logrus.Entry
	self    proc.Identity
	init    *process
	ln      *net.UnixListener
	lnMu    sync.Mutex    // guards ln, replaced when the folder is restored
	conns   conns         // open control connections
	created chan struct{} // closed once the runtime's create has succeeded
	watch   folderWatch   // restores the state folder if it is removed
	adopted time.Time     // when this shim adopted the container; zero if it created it

	mu       sync.Mutex
	execs    map[string]*process
	finished []*process // finished execs still kept, oldest first
	byPid    map[int]*process
	stash    map[int]reaper.Exit

	shutdown     chan struct{}
	shutdownOnce sync.Once
}

// Run creates the container, reports readiness, and serves until the
// container is deleted or ctx is done. It must be called once per process:
// it makes the process a child subreaper and owns all reaping in it.
func Run(ctx context.Context, cfg Config) error {
	s, err := setup(ctx, cfg)
	report(cfg.Ready, s, err)
	if err != nil {
		return err
	}
	return s.serve(ctx)
}

func report(ready *os.File, s *Shim, err error) {
	if ready == nil {
		return
	}
	msg := ReadyMessage{}
	if err != nil {
		msg.Error, msg.Code = err.Error(), codeOf(err)
	} else {
		_, pid, _ := s.init.current()
		msg.Pid = pid.Pid
	}
	b, _ := json.Marshal(msg)
	ready.Write(append(b, '\n'))
	ready.Close()
}

func setup(ctx context.Context, cfg Config) (*Shim, error) {
	s := &Shim{id: cfg.ID, dir: filepath.Join(cfg.Root, cfg.ID), log: cfg.Log,
		execs: map[string]*process{}, byPid: map[int]*process{},
		stash: map[int]reaper.Exit{}, shutdown: make(chan struct{}), created: make(chan struct{})}
	if s.log == nil {
		s.log = logrus.NewEntry(logrus.StandardLogger())
	}
	s.protectFromOOM()
	rec, err := ReadRecord(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read container record: %w", err)
	}
	s.rec = rec
	sub, err := s.startReaping(ctx)
	if err != nil {
		return nil, err
	}
	if s.self, err = WritePid(s.dir, ShimPidFile, os.Getpid()); err != nil {
		return nil, err
	}
	if s.ln, err = Listen(s.dir); err != nil {
		return nil, err
	}
	go s.acceptLoop(ctx, s.ln) // state answers "creating" until create is done
	if err := s.createInit(ctx); err != nil {
		s.closeListener()
		s.killLeftovers()
		return nil, err
	}
	close(s.created)
	s.watchFolder(ctx)
	go s.dispatch(ctx, sub)
	return s, nil
}

// startReaping makes the shim a child subreaper, starts its reaper and
// the runtime binding that runs commands through it. The returned
// subscription is taken before any child exists, so no exit is missed;
// dispatch consumes it.
func (s *Shim) startReaping(ctx context.Context) (*reaper.Subscription, error) {
	if err := reaper.SetSubreaper(); err != nil {
		return nil, err
	}
	s.mon = reaper.New()
	sub := s.mon.Subscribe()
	s.mon.Run(ctx)
	s.rt = &oci.Runtime{Command: s.rec.Runtime, Root: s.rec.RuntimeRoot,
		Args: s.rec.RuntimeArgs, Monitor: s.mon,
		Timeout: time.Duration(s.rec.RuntimeTimeoutMS) * time.Millisecond}
	return sub, nil
}

// createInit runs the runtime's create and records init's pid.
func (s *Shim) createInit(ctx context.Context) error {
	log, err := crilog.Open(filepath.Join(s.dir, OutputLogFile),
		crilog.Options{MaxSize: s.rec.LogMaxSize, MaxFiles: s.rec.LogMaxFiles})
	if err != nil {
		return fmt.Errorf("open output log: %w", err)
	}
	pio := &procIO{log: log, warn: s.warnDropped}
	s.init = newProcess("", s.dir, ExitFile, pio)
	since := time.Now()
	opts := &oci.CreateOpts{PidFile: filepath.Join(s.dir, RuntimePidRaw)}
	err = s.withIO(ctx, pio, s.rec.Terminal, s.rec.Stdin, consolePath(s.dir, "init"),
		func(io *stdioFiles, consoleSocket string) error {
			setCreateIO(opts, io, consoleSocket)
			return s.createRuntime().Create(ctx, s.id, s.rec.Bundle, opts)
		})
	if err != nil {
		pio.close()
		s.rt.Delete(context.WithoutCancel(ctx), s.id, &oci.DeleteOpts{Force: true})
		return err
	}
	crashPoint("shim-after-runtime-create") // recovery tests only
	if err := s.track(s.init, opts.PidFile, since); err != nil {
		return err
	}
	crashPoint("shim-after-init-pid") // recovery tests only
	return nil
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
	ident, err := p.recordPid(pid)
	if err != nil && !errors.Is(err, proc.ErrGone) {
		return err
	}
	if err != nil { // already gone: keep what we know
		ident = proc.Identity{Pid: pid}
	}
	p.mu.Lock()
	p.pid = ident
	p.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.stash[pid]; ok && !e.Timestamp.Before(since) {
		delete(s.stash, pid)
		go s.finish(p, e)
		return nil
	}
	s.byPid[pid] = p
	return nil
}

// dispatch is the one consumer of the reaper's exits in the shim.
func (s *Shim) dispatch(ctx context.Context, sub *reaper.Subscription) {
	defer sub.Close()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		p, ok := s.byPid[e.Pid]
		if ok {
			delete(s.byPid, e.Pid)
		} else {
			s.stashExit(e)
		}
		s.mu.Unlock()
		if ok {
			go s.finish(p, e)
		}
	}
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
	}
	s.record(p, e, reason)
}

// record writes p's exit record, cleans up after it (kills the exec'd
// processes when init ended; prunes old execs) and only then wakes its
// waiters, so none of them sees a half-finished state.
func (s *Shim) record(p *process, e reaper.Exit, reason string) {
	if err := p.exited(e, reason); err != nil {
		s.log.WithError(err).Error("exit record not written")
	}
	s.log.WithFields(logrus.Fields{"exec": p.id, "pid": e.Pid, "status": e.Status, "reason": reason}).Info("process exited")
	if p == s.init {
		s.killExecs()
	} else {
		s.execFinished(p)
	}
	p.wake()
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

// serve answers the control socket until delete or ctx.
func (s *Shim) serve(ctx context.Context) error {
	select {
	case <-s.shutdown:
	case <-ctx.Done():
	}
	s.closeListener()
	return nil
}

func (s *Shim) stop() {
	s.shutdownOnce.Do(func() { close(s.shutdown) })
}

// state describes the container and its exec'd processes.
func (s *Shim) state() *State {
	status, pid, exit := s.init.current()
	created := s.rec.CreatedAt
	st := &State{ID: s.id, Status: status, Pid: pid.Pid, ShimPid: os.Getpid(),
		Bundle: s.rec.Bundle, CreatedAt: &created}
	if !s.adopted.IsZero() {
		st.AdoptedAt = timePtr(s.adopted)
	}
	if exit != nil {
		st.ExitStatus, st.ExitedAt, st.Reason = &exit.Status, timePtr(exit.ExitedAt), exit.Reason
	}
	s.mu.Lock()
	for _, p := range s.execs {
		st.Execs = append(st.Execs, p.execState(status == StatusPaused))
	}
	s.mu.Unlock()
	sortExecs(st.Execs)
	return st
}
