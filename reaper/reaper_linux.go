package reaper

import (
	"context"
	"errors"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// signalOffset is added to a signal number to form the exit status of a
// process killed by that signal, as shells do.
const signalOffset = 128

// SetSubreaper makes the calling process a child subreaper
// (prctl PR_SET_CHILD_SUBREAPER): orphans among its descendants are
// reparented to it instead of to init. It needs no privilege. Call it once,
// early, before starting container processes, and run a Monitor (Run) so
// that the reparented orphans are reaped; without one they stay zombies.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", err)
	}
	return nil
}

// ExitStatus is the one place that turns a wait status into an exit status:
// a normal exit gives its exit code (0-255), death by signal N gives 128+N.
// Any other status (stopped, continued; never produced by this package)
// gives -1.
func ExitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return signalOffset + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Run starts the reaping loop in a new goroutine. The loop does a reap
// pass at once and then one each time a child exits, until ctx is done;
// then it does a last pass, closes every Subscription and closes Done.
//
// The loop is woken by the kernel's child-exit notification, the event
// that also raises SIGCHLD, taken through a blocking
// waitid(P_ALL, WEXITED|WNOWAIT): it reports that some child has exited
// without reaping it, and the pass then reaps every exited child with
// wait4(-1, WNOHANG). That costs one thread sleeping in the kernel, where
// os/signal costs three for good (the receiving thread, the thread locked
// to manage signal masks, and the runtime's template thread that the
// locking brings along), a third of an idle shim's threads. The price:
// a goroutine blocked in a system call keeps its P until the runtime's
// sysmon takes it back, which on a process that has been idle can take up
// to 10 ms; so right after each reaping pass, what the pass woke runs
// first (Gosched), and a request that arrives in that window may wait
// those few milliseconds (measured: `state` right after an exec, p50 the
// same as with os/signal, p90 +0.7 ms). While the
// process has no child at all, waitid fails at once (ECHILD); the loop
// then waits for Start to make one, looking again now and then (from
// 100 ms, backing off to 10 s) in case a child was made some other way.
//
// Call Run once per Monitor; further calls do nothing. After the loop
// stopped the Monitor never reaps again: children exit into zombies unless
// someone else waits for them, and Start falls back to plain cmd.Wait. Errors
// of a pass other than ECHILD are not reported by Run (they cannot happen
// with valid arguments); the pass is retried at the next exit.
func (m *Monitor) Run(ctx context.Context) {
	m.mu.Lock()
	if m.running || m.stopped {
		m.mu.Unlock()
		return
	}
	m.running = true
	m.kick = make(chan struct{}, 1)
	done := m.doneLocked()
	m.mu.Unlock()

	go m.watch(m.kick, done)
	context.AfterFunc(ctx, func() { // no goroutine parked until then
		_ = m.Reap()
		m.shutdown()
	})
}

// Idle waits with no child at all, in case one was made other than
// through Start.
const (
	minIdleLook = 100 * time.Millisecond
	maxIdleLook = 10 * time.Second
)

// watch is the loop: a pass, then a blocking wait for the next exit. It
// ends with the Monitor; a watch blocked in waitid then returns at the next
// child exit, reaping nothing.
func (m *Monitor) watch(kick, done <-chan struct{}) {
	idle := minIdleLook
	var timer *time.Timer
	for {
		if errors.Is(m.Reap(), ErrStopped) {
			return
		}
		// waitid blocks in the kernel holding this goroutine's P until
		// sysmon takes it back (up to 10 ms on an idle process): let what
		// the pass woke (waiters of the exits, their replies) run first.
		goruntime.Gosched()
		var si unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &si, unix.WEXITED|unix.WNOWAIT, nil)
		switch {
		case err == nil, errors.Is(err, unix.EINTR):
			idle = minIdleLook
			continue
		case !errors.Is(err, unix.ECHILD):
			idle = maxIdleLook // cannot happen: do not spin on it
		}
		if timer == nil {
			timer = time.NewTimer(idle)
		} else {
			timer.Reset(idle)
		}
		select {
		case <-kick:
			idle = minIdleLook
		case <-timer.C:
			idle = min(2*idle, maxIdleLook)
		case <-done:
			return
		}
	}
}

// Reap does one non-blocking reaping pass now: it calls wait4(-1, WNOHANG)
// until no exited child is left (0 or ECHILD), retrying EINTR, and
// broadcasts what it reaped to the current Subscriptions. ECHILD is not an
// error. Run calls it for you; call it by hand in tests, or right after
// SetSubreaper to collect orphans that were already waiting. Passes are
// serialised. It returns ErrStopped after the loop started by Run stopped.
func (m *Monitor) Reap() error {
	m.pass.Lock()
	defer m.pass.Unlock()
	if m.isStopped() {
		return ErrStopped
	}
	exits, err := reapAll()
	m.broadcast(exits)
	return err
}

// reapAll reaps every child that has exited, without blocking.
func reapAll() ([]Exit, error) {
	var exits []Exit
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return exits, nil
		case err != nil:
			return exits, os.NewSyscallError("wait4", err)
		case pid <= 0:
			return exits, nil
		}
		exits = append(exits, Exit{Pid: pid, Status: ExitStatus(ws), Timestamp: time.Now()})
	}
}

// Start starts cmd with its exit watched by the Monitor, and has the
// signature of the ProcessMonitor interface of the OCI binding. It
// subscribes before cmd.Start, so the exit cannot be missed however soon it
// happens. If cmd.Start fails, the subscription is closed and the error
// returned.
//
// The returned wait function blocks until the Monitor reaped cmd's process
// and returns its exit status (ExitStatus convention; a non-zero status is
// not an error). It then calls cmd.Wait only to release cmd's pipes and
// copying goroutines, ignoring the "no child processes" error this gives.
// The error of wait is non-nil only if releasing failed in another way.
// Call wait exactly once (further calls return the same result); until it is
// called, the subscription queues every exit of the process and cmd's pipes
// stay open. Never call cmd.Wait yourself. The Monitor must be Run, or wait
// blocks; if its loop stops first, wait falls back to cmd.Wait.
func (m *Monitor) Start(cmd *exec.Cmd) (func() (int, error), error) {
	sub := m.Subscribe()
	if err := cmd.Start(); err != nil {
		sub.Close()
		return nil, err
	}
	m.childMade()
	return sync.OnceValues(func() (int, error) {
		return m.wait(cmd, sub)
	}), nil
}

// wait picks cmd's exit out of sub. If the Monitor stops before the exit
// was reaped nobody else will reap it, so it waits directly.
func (m *Monitor) wait(cmd *exec.Cmd, sub *Subscription) (int, error) {
	pid := cmd.Process.Pid
	for {
		e, err := sub.Next(context.Background())
		if err != nil {
			sub.Close()
			return waitDirect(cmd)
		}
		if e.Pid == pid {
			sub.Close()
			return e.Status, release(cmd)
		}
	}
}

// release calls cmd.Wait on a process the Monitor already reaped, so that
// os/exec closes its pipes and ends its copying goroutines. Process.Wait
// then fails with ECHILD (Go's pidfd or wait4 path alike); that and an
// *exec.ExitError are expected and dropped. A Wait that fails keeps the
// process's pidfd open until the garbage collector finds the Process, so
// it is released here at once: a shim that seldom collects would
// otherwise hold one fd per finished command.
func release(cmd *exec.Cmd) error {
	err := cmd.Wait()
	cmd.Process.Release()
	var exitErr *exec.ExitError
	if err == nil || isNoChild(err) || errors.As(err, &exitErr) {
		return nil
	}
	return err
}

// isNoChild reports whether err says the child was already reaped. Go wraps
// ECHILD in *os.SyscallError ("wait" or "waitid"); the text check covers
// wrappers that lost the errno.
func isNoChild(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ECHILD) {
		return true
	}
	return strings.Contains(err.Error(), syscall.ECHILD.Error())
}

// waitDirect waits with cmd.Wait and maps the result to an exit status;
// an *exec.ExitError is a status, not an error.
func waitDirect(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		err = nil
	}
	ps := cmd.ProcessState
	if ps == nil {
		return -1, err
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return ps.ExitCode(), err
	}
	return ExitStatus(unix.WaitStatus(ws)), err
}
