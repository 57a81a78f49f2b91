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

// codes pairs each protocol code with the sentinel it stands for, and the
// OCI binding's sentinel that means the same, if any. The first match wins.
var codes = []struct {
	code     string
	err, oci error
}{
	{CodeNotFound, ErrNotFound, nil},
	{CodeExists, ErrExists, nil},
	{CodeNotRunning, ErrNotRunning, nil},
	{CodeRunning, ErrRunning, nil},
	{CodeInvalid, ErrInvalid, nil},
	{CodeNoCommand, ErrCommandNotFound, oci.ErrCommandNotFound},
	{CodeNoExec, ErrCommandNotExecutable, oci.ErrCommandNotExecutable},
}

// codeOf turns an error into a protocol code.
func codeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) || c.oci != nil && errors.Is(err, c.oci) {
			return c.code
		}
	}
	return CodeFailed
}

// ErrorOfCode is the inverse of codeOf: the sentinel a reply code (or a
// ready message's code) stands for, or nil.
func ErrorOfCode(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}
