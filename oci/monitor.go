package oci

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ProcessMonitor starts a runtime command and later waits for it.
//
// The shim passes its reaper, which owns wait4 for every child of the
// process; the manager and tests use DirectMonitor. Start must start cmd
// (cmd.Start or equivalent) and return a wait function that blocks until
// the process exits and returns its exit status: the exit code for a
// normal exit, 128+N for death by signal N. wait is called exactly once.
// A non-nil error from wait means the status could not be obtained; a
// non-zero status is not an error of wait.
//
// Every *exec.Cmd handed to Start has only *os.File (or nil) stdio, so no
// copying goroutines need cmd.Wait to finish: an implementation that reaps
// the process itself and never calls cmd.Wait loses no output. Such an
// implementation should call cmd.Process.Release once it has reaped the
// process, to close the pidfd promptly. The command was made with
// exec.CommandContext, so when the call's context ends os/exec may send
// SIGKILL through that pidfd; after the process was reaped this fails
// harmlessly (no other process can receive it).
type ProcessMonitor interface {
	Start(cmd *exec.Cmd) (wait func() (int, error), err error)
}

// DirectMonitor is a ProcessMonitor that uses plain cmd.Start and cmd.Wait.
// It must not be used in a process where something else reaps children
// with wait4(-1), such as a shim's reaper. Its zero value is ready to use.
type DirectMonitor struct{}

// Start starts cmd. The returned wait calls cmd.Wait and maps an
// *exec.ExitError to the exit status convention (code, or 128+signal)
// with a nil error; any other error from cmd.Wait is returned with
// status -1 unless a status is known.
func (DirectMonitor) Start(cmd *exec.Cmd) (func() (int, error), error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() (int, error) {
		err := cmd.Wait()
		return exitStatus(cmd.ProcessState, err)
	}, nil
}

// exitStatus converts the result of exec.Cmd.Wait into the convention of
// ProcessMonitor: a status and an error that is nil when the status is known.
func exitStatus(ps *os.ProcessState, err error) (int, error) {
	if ps == nil {
		if err == nil {
			err = errors.New("no process state")
		}
		return -1, err
	}
	status := ps.ExitCode()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Signaled():
			status = 128 + int(ws.Signal())
		case ws.Exited():
			status = ws.ExitStatus()
		}
	}
	var exitErr *exec.ExitError
	if err == nil || errors.As(err, &exitErr) {
		return status, nil
	}
	return status, err
}
