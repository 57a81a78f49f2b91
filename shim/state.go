package shim

import (
	"errors"
	"fmt"

	"github.com/tether-run/tether/runtime/oci"
)

// Sentinel errors a caller can branch on (use errors.Is). The client maps
// the shim's reply codes back onto them.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrNotRunning   = errors.New("not running")
	ErrRunning      = errors.New("still running")
	ErrInvalid      = errors.New("invalid argument")
	ErrUnresponsive = errors.New("shim not responding")
	// ErrCommandNotFound: the process's executable is not in the
	// container; ErrCommandNotExecutable: it is there but cannot be run.
	// A CLI exits 127 and 126 for them, as shells and podman do.
	ErrCommandNotFound      = errors.New("command not found")
	ErrCommandNotExecutable = errors.New("command not executable")
)

// TransitionError is returned when a request asks a process to move to a
// state it cannot reach from where it is (start twice, pause a stopped
// container). It wraps ErrNotRunning or ErrRunning as fits.
type TransitionError struct {
	From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot go from %s to %s", e.From, e.To)
}

// Unwrap gives the sentinel that best describes the refusal.
func (e *TransitionError) Unwrap() error {
	if e.From == StatusStopped {
		return ErrNotRunning
	}
	return ErrRunning
}

// allowed lists the legal moves of a process's lifecycle.
var allowed = map[string][]string{
	StatusCreated: {StatusRunning, StatusStopped},
	StatusRunning: {StatusPaused, StatusStopped},
	StatusPaused:  {StatusRunning, StatusStopped},
	StatusStopped: {},
}

// checkTransition returns nil when from -> to is a legal move.
func checkTransition(from, to string) error {
	for _, s := range allowed[from] {
		if s == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// codeOf turns an error into a protocol code.
func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrExists):
		return CodeExists
	case errors.Is(err, ErrNotRunning):
		return CodeNotRunning
	case errors.Is(err, ErrRunning):
		return CodeRunning
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrCommandNotFound), errors.Is(err, oci.ErrCommandNotFound):
		return CodeNoCommand
	case errors.Is(err, ErrCommandNotExecutable), errors.Is(err, oci.ErrCommandNotExecutable):
		return CodeNoExec
	}
	return CodeFailed
}

// ErrorOfCode is the inverse of codeOf: the sentinel a reply code (or a
// ready message's code) stands for, or nil.
func ErrorOfCode(code string) error {
	switch code {
	case CodeNotFound:
		return ErrNotFound
	case CodeExists:
		return ErrExists
	case CodeNotRunning:
		return ErrNotRunning
	case CodeRunning:
		return ErrRunning
	case CodeInvalid:
		return ErrInvalid
	case CodeNoCommand:
		return ErrCommandNotFound
	case CodeNoExec:
		return ErrCommandNotExecutable
	}
	return nil
}
