package runtime

import (
	"context"
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/shim"
)

// ExecOpts describe a process to run in a container (see shim.ExecOpts).
type ExecOpts = shim.ExecOpts

// Stream is a live connection to a process's IO (see shim.Stream).
type Stream = shim.Stream

// ProcessSpec returns the container's own process (user, env, cwd,
// capabilities, rlimits from its bundle) with args in place of its command:
// the usual base for an exec.
func (c *Container) ProcessSpec(args []string) (specs.Process, error) {
	if err := c.usable(); err != nil {
		return specs.Process{}, err
	}
	spec, err := bundle.LoadSpec(c.rec.Bundle)
	if err != nil {
		return specs.Process{}, fmt.Errorf("exec %s: %w", c.id, err)
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = false
	p.ConsoleSize = nil
	return p, nil
}

// ExecState describes one exec'd process in State.Execs (see
// shim.ExecState).
type ExecState = shim.ExecState

// ExecRetention is how many finished exec'd processes a container keeps
// (exit record, log, entry in State.Execs) before the oldest are removed.
const ExecRetention = shim.ExecRetention

// ReasonInitExited is the Reason of an exec'd process that was killed
// because the container's init exited.
const ReasonInitExited = shim.ReasonInitExited

// Exec starts a process in the running container through the OCI
// runtime's exec. opts.ID names it (see shim.ValidID) and must not name
// another exec of the container still kept (ErrExists); opts.Process is
// usually made with ProcessSpec. With opts.Attach the returned Stream
// carries its IO; otherwise its output goes to its own log in the
// container folder. The returned state holds its pid. The shim reaps it
// and writes its exit record; WaitExec returns that, also after a
// restart of the manager. A container that is not running gives
// ErrNotRunning (paused included: resume it first); the runtime's own
// refusal (for example a command not found) comes back as its message.
func (c *Container) Exec(ctx context.Context, opts ExecOpts) (*State, *Stream, error) {
	if err := c.usable(); err != nil {
		return nil, nil, err
	}
	if err := shim.ValidID(opts.ID); err != nil {
		return nil, nil, fmt.Errorf("exec ID: %w", err)
	}
	st, stream, err := c.client().Exec(ctx, opts)
	if len(opts.Process.Args) > 0 {
		err = explainCommand(err, opts.Process.Args[0])
	}
	return st, stream, c.wrap("exec", err)
}

// Attach streams the live output of init ("" ) or of an exec'd process,
// and takes input for it.
func (c *Container) Attach(ctx context.Context, exec string) (*Stream, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	s, err := c.client().Attach(ctx, exec)
	return s, c.wrap("attach", err)
}

// CloseStdin ends the input of init ("") or of an exec'd process.
func (c *Container) CloseStdin(ctx context.Context, exec string) error {
	return c.wrap("close stdin", c.client().CloseStdin(ctx, exec))
}

// Resize sets the terminal size of init ("") or of an exec'd process.
func (c *Container) Resize(ctx context.Context, exec string, width, height uint16) error {
	return c.wrap("resize", c.client().Resize(ctx, exec, width, height))
}

// execExitWithoutShim decides an exec'd process's end from its records
// when the shim is gone: its exit record if it was written; an error if
// it still runs; otherwise an unknown status (never 0) with the reason.
func (c *Container) execExitWithoutShim(exec string) (*ExitRecord, error) {
	dir := filepath.Join(c.dir, shim.ExecDir)
	if exit, err := shim.ReadExit(dir, exec+".exit.json"); err == nil {
		return exit, nil
	}
	id, err := shim.ReadPid(dir, exec+".pid")
	if err != nil {
		return nil, fmt.Errorf("wait %s: exec %q: %w (no exit record and no pid record)", c.id, exec, ErrNotFound)
	}
	if id.Alive() {
		return nil, fmt.Errorf("wait %s: exec %q (pid %d) still runs but its shim is gone: kill it with 'tether kill --exec-id %s %s'", c.id, exec, id.Pid, exec, c.id)
	}
	return &ExitRecord{Version: shim.SchemaVersion, Pid: id.Pid, Status: UnknownExitStatus,
		Reason: "shim died before it recorded the exit; the exit status is unknown"}, nil
}
