package shimapi

import (
	"errors"
	"fmt"

	"github.com/tether-run/tether/internal/errdefs"
)

// Reply codes carried in Response.Code and Ready.Code.
const (
	CodeNotFound   = "not_found"
	CodeExists     = "exists"
	CodeNotRunning = "not_running"
	CodeRunning    = "running"
	CodeInvalid    = "invalid"
	CodeFailed     = "failed"
	// CodeNoCommand and CodeNoExec: the process's executable was not
	// found, or cannot be run (create or exec).
	CodeNoCommand = "command_not_found"
	CodeNoExec    = "command_not_executable"
)

// codes pairs each reply code with the sentinel it stands for: the one
// table, used in both directions. The first match wins, so the more
// specific sentinels come first.
var codes = []struct {
	code string
	err  error
}{
	{CodeNoCommand, errdefs.ErrCommandNotFound},
	{CodeNoExec, errdefs.ErrCommandNotExecutable},
	{CodeNotFound, errdefs.ErrNotFound},
	{CodeExists, errdefs.ErrExists},
	{CodeNotRunning, errdefs.ErrNotRunning},
	{CodeRunning, errdefs.ErrRunning},
	{CodeInvalid, errdefs.ErrInvalid},
}

// CodeOf turns an error into a reply code (CodeFailed for none of the
// sentinels).
func CodeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeFailed
}

// ErrorOf is the inverse of CodeOf: the sentinel a code stands for, or nil.
func ErrorOf(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// Fail is the reply for err, in protocol version v.
func Fail(v int, err error) *Response {
	return &Response{Version: v, Error: err.Error(), Code: CodeOf(err)}
}

// Err checks a reply read by a client that sent version sent: a reply in
// another version, or an error reply, gives an error; an error reply's
// sentinel is reachable with errors.Is through a *RemoteError.
func (r *Response) Err(sent int) error {
	if r.Error == "" && r.Version != sent {
		return fmt.Errorf("shim answered with protocol version %d to a request of version %d: %w", r.Version, sent, errdefs.ErrVersion)
	}
	if r.Error == "" {
		return nil
	}
	return &RemoteError{Msg: r.Error, Err: ErrorOf(r.Code)}
}

// Downgrade reports the version a client that sent version sent should
// retry in, after reply r: a shim that speaks an older version (the reply
// says which) refused the request for its version. ok is false when a
// retry would not help.
func (r *Response) Downgrade(sent int) (v int, ok bool) {
	if r.Error == "" || r.Version >= sent || r.Version < MinVersion {
		return 0, false
	}
	if r.Code != CodeInvalid { // how every version refuses another version
		return 0, false
	}
	return r.Version, true
}

// RemoteError is an error reported by a shim. Err is the sentinel its
// code maps to (nil if none), reachable through errors.Is.
type RemoteError struct {
	Msg string
	Err error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.Err }
