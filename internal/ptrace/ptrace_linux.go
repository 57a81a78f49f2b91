// Package ptrace follows a process to its exit as its tracer, without
// getting in its way, so that a process that is not its parent learns its
// true exit status. Tether needs it where the kernel's process events
// connector (CAP_NET_ADMIN in the host's user namespace) is out of reach:
// an adopting shim and podman's rootless monitor watcher.
//
// The tracer only seizes (PTRACE_SEIZE: no SIGSTOP, no stop at attach),
// resumes every stop at once, delivers every signal, keeps a group stop
// (SIGSTOP and its kin) a real stop with PTRACE_LISTEN, and sets no
// PTRACE_O_EXITKILL: if the tracer dies, the kernel detaches it and the
// traced process runs on. Its cost is a round trip through the tracer for
// each signal the process receives and once at its exit; system calls are
// not traced.
package ptrace

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"golang.org/x/sys/unix"
)

// ErrTraced is returned by Seize when pid cannot be traced: a debugger
// already traces it, or tracing is not allowed (Yama's ptrace_scope).
var ErrTraced = errors.New("already traced by a debugger, or tracing is not allowed")

// Seize makes the calling thread pid's tracer and checks that pid is still
// the process that started at start (/proc/PID/stat field 22). Every
// later ptrace request, Follow included, must come from the same thread:
// call runtime.LockOSThread first. On an error pid is not traced.
func Seize(pid int, start uint64) error {
	// No options: no PTRACE_O_TRACEEXIT, whose exit stop would let a
	// stalled tracer (stopped, or starved) hold the process on its way
	// out; the tracer's wait gets the zombie's status first anyway, before
	// the real parent is told. (A seized tracee gets no SIGTRAP at execve
	// either.)
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, 0, 0, 0); e != 0 {
		if e == unix.EPERM {
			return fmt.Errorf("cannot trace pid %d: %w (%w)", pid, ErrTraced, e)
		}
		return fmt.Errorf("cannot trace pid %d: %w", pid, e)
	}
	if st, err := proc.ReadStat(pid); err != nil || st.StartTime != start {
		Detach(pid)
		return fmt.Errorf("pid %d is no longer the process to trace: %w", pid, proc.ErrGone)
	}
	return nil
}

// Follow resumes pid, which the calling thread traces (Seize), through
// every stop until it exits, and returns its exit status (128+N for a
// death by signal N). Only the real parent reaps it: the tracer's wait
// reports the zombie first, and the kernel then tells the real parent.
func Follow(pid int) (int, error) {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		switch {
		case ws.Exited(), ws.Signaled():
			return reaper.ExitStatus(ws), nil
		case !ws.Stopped():
			continue
		}
		sig := ws.StopSignal()
		// The event is the status's third byte (WaitStatus.TrapCause reads
		// it only for SIGTRAP stops; a PTRACE_EVENT_STOP carries the stop
		// signal).
		switch int(ws>>16) & 0xff {
		case unix.PTRACE_EVENT_STOP:
			if isGroupStop(sig) {
				// a group stop: it stays stopped until SIGCONT, as untraced
				if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_LISTEN, uintptr(pid), 0, 0, 0, 0); e != 0 {
					err = e
				}
			} else {
				err = unix.PtraceCont(pid, 0)
			}
		case 0: // a signal-delivery stop: deliver the signal
			err = unix.PtraceCont(pid, int(sig))
		default: // an event the tracer did not ask for
			err = unix.PtraceCont(pid, 0)
		}
		if errors.Is(err, unix.ESRCH) {
			continue // killed meanwhile: wait reports it
		}
	}
}

// Detach lets go of pid, which the calling thread traces. Detaching needs
// the tracee stopped, so it is interrupted first; a signal it was stopped
// for is delivered. (The kernel also detaches every tracee when its
// tracing thread ends.)
func Detach(pid int) {
	unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_INTERRUPT, uintptr(pid), 0, 0, 0, 0)
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); errors.Is(err, unix.EINTR) {
			continue
		} else if err != nil || !ws.Stopped() {
			return
		}
		sig := 0
		if int(ws>>16)&0xff == 0 { // a signal-delivery stop
			sig = int(ws.StopSignal())
		}
		unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(pid), 0, uintptr(sig), 0, 0)
		return
	}
}

func isGroupStop(sig syscall.Signal) bool {
	return sig == syscall.SIGSTOP || sig == syscall.SIGTSTP || sig == syscall.SIGTTIN || sig == syscall.SIGTTOU
}
