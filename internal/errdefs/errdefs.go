// Package errdefs holds the sentinel errors every layer of tether shares:
// the shim core returns them, the wire protocol carries them as reply
// codes (package shimapi owns that table), and the manager API re-exports
// them for errors.Is. It owns nothing else and imports nothing of tether.
package errdefs

import "errors"

// Sentinels for errors.Is. Each says what the caller can branch on, never
// what to type: hints for a user belong to the CLI.
var (
	// ErrNotFound: no such container, exec'd process or record.
	ErrNotFound = errors.New("not found")
	// ErrExists: the ID is taken.
	ErrExists = errors.New("already exists")
	// ErrNotRunning: the operation needs a running process and it is not.
	ErrNotRunning = errors.New("not running")
	// ErrRunning: the operation needs a stopped process and it runs.
	ErrRunning = errors.New("still running")
	// ErrInvalid: a bad argument (ID, signal, option).
	ErrInvalid = errors.New("invalid argument")
	// ErrUnresponsive: a shim did not answer in time, or is gone.
	ErrUnresponsive = errors.New("shim not responding")
	// ErrCommandNotFound: the process's executable is not in the
	// container; ErrCommandNotExecutable: it is there but cannot be run.
	// A CLI exits 127 and 126 for them, as shells and podman do.
	ErrCommandNotFound      = errors.New("command not found")
	ErrCommandNotExecutable = errors.New("command not executable")
	// ErrVersion: a record or a peer of a version this build cannot read
	// (a newer one). The container is left alone.
	ErrVersion = errors.New("unsupported schema version")
	// ErrCorrupt: a record exists but cannot be parsed or fails its checks.
	ErrCorrupt = errors.New("corrupt record")
)
