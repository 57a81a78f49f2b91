package oci

import (
	"os"
	"path/filepath"
	"strconv"
)

// IO is the standard I/O given to the runtime process for create and exec.
// The runtime passes it on to the container's process, which inherits the
// files, so they must be real files (pipes, FIFOs, ttys, /dev/null...), not
// io.Writers: with a writer, waiting for the runtime would block until the
// container closed its end. A nil field means /dev/null.
//
// The caller keeps ownership: close your copies of the container's ends
// after Create or Exec returns.
type IO struct {
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
}

// CreateOpts are the options of Runtime.Create. A nil *CreateOpts is the
// same as the zero value.
type CreateOpts struct {
	// IO is the stdio of the runtime and hence of the container's init.
	IO
	// PidFile, if set, is where the runtime writes the init's pid
	// (--pid-file). Relative paths are made absolute.
	PidFile string
	// ConsoleSocket, if set, is the path of an AF_UNIX socket that receives
	// the pty master when the config asks for a terminal (--console-socket).
	ConsoleSocket string
	// NoPivot uses chroot-like setup instead of pivot_root (--no-pivot).
	NoPivot bool
	// NoNewKeyring keeps the caller's session keyring (--no-new-keyring).
	NoNewKeyring bool
	// ExtraFiles are passed to the container as fds 3, 4, ...
	// (--preserve-fds N).
	ExtraFiles []*os.File
}

// args returns the subcommand flags for o (without --bundle and the id).
func (o *CreateOpts) args() ([]string, error) {
	var out []string
	if o.PidFile != "" {
		abs, err := filepath.Abs(o.PidFile)
		if err != nil {
			return nil, err
		}
		out = append(out, "--pid-file", abs)
	}
	if o.ConsoleSocket != "" {
		out = append(out, "--console-socket", o.ConsoleSocket)
	}
	if o.NoPivot {
		out = append(out, "--no-pivot")
	}
	if o.NoNewKeyring {
		out = append(out, "--no-new-keyring")
	}
	if len(o.ExtraFiles) > 0 {
		out = append(out, "--preserve-fds", strconv.Itoa(len(o.ExtraFiles)))
	}
	return out, nil
}

// ExecOpts are the options of Runtime.Exec. A nil *ExecOpts is the same as
// the zero value. Exec always runs the runtime with --detach; see Exec.
type ExecOpts struct {
	// IO is the stdio of the runtime and hence of the new process.
	IO
	// PidFile, if set, is where the runtime writes the new process's pid
	// (--pid-file); it is left in place. If empty, a temporary pid file in
	// Runtime.LogDir is used and removed. Relative paths are made absolute.
	PidFile string
	// ProcessFile, if set, is where the process spec JSON is written and
	// left for the caller (--process). If empty, a temporary file in
	// Runtime.LogDir is used and removed.
	ProcessFile string
	// ConsoleSocket, if set, receives the pty master when spec.Terminal is
	// true (--console-socket).
	ConsoleSocket string
	// ExtraFiles are passed to the process as fds 3, 4, ...
	// (--preserve-fds N).
	ExtraFiles []*os.File
}

// args returns the subcommand flags for o given the resolved process and pid
// file paths (without the id). --detach is always present.
func (o *ExecOpts) args(processFile, pidFile string) ([]string, error) {
	out := []string{"--detach"}
	abs, err := filepath.Abs(processFile)
	if err != nil {
		return nil, err
	}
	out = append(out, "--process", abs)
	if abs, err = filepath.Abs(pidFile); err != nil {
		return nil, err
	}
	out = append(out, "--pid-file", abs)
	if o.ConsoleSocket != "" {
		out = append(out, "--console-socket", o.ConsoleSocket)
	}
	if len(o.ExtraFiles) > 0 {
		out = append(out, "--preserve-fds", strconv.Itoa(len(o.ExtraFiles)))
	}
	return out, nil
}

// KillOpts are the options of Runtime.Kill. A nil *KillOpts is the same as
// the zero value.
type KillOpts struct {
	// All sends the signal to every process in the container, not only
	// its init (--all).
	All bool
}

// args returns the subcommand flags for o (without the id and signal).
func (o *KillOpts) args() []string {
	if o.All {
		return []string{"--all"}
	}
	return nil
}

// DeleteOpts are the options of Runtime.Delete. A nil *DeleteOpts is the
// same as the zero value.
type DeleteOpts struct {
	// Force kills a running container with SIGKILL before deleting it
	// (--force). With runc 1.1 and crun 1.8, a forced delete of a missing
	// id succeeds.
	Force bool
}

// args returns the subcommand flags for o (without the id).
func (o *DeleteOpts) args() []string {
	if o.Force {
		return []string{"--force"}
	}
	return nil
}
