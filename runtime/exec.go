package runtime

import (
	"context"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/runtime/internal/client"
)

// ExecOpts describe a process to run in a container.
type ExecOpts struct {
	// ID names it (the container ID rule); see Exec.
	ID string
	// Process is its spec, usually made with ProcessSpec.
	Process specs.Process
	// Terminal gives it a pty; Stdin keeps a pipe to its input.
	Terminal, Stdin bool
	// Attach returns a Stream of its IO.
	Attach bool
}

// Stream is a live connection to a process's IO. Close it when done; the
// process goes on.
type Stream struct{ s *client.Stream }

// Copy writes the process's output to stdout and stderr until it exits,
// and returns its exit record. A nil record with a nil error means the
// stream was cut (this follower fell too far behind, or the shim went
// away): the whole output is in the log.
func (s *Stream) Copy(stdout, stderr io.Writer) (*ExitRecord, error) {
	e, err := s.s.Copy(stdout, stderr)
	return fromWireExit(e), err
}

// Write sends input to the process.
func (s *Stream) Write(p []byte) (int, error) { return s.s.Write(p) }

// CloseStdin sends end of input.
func (s *Stream) CloseStdin() error { return s.s.CloseStdin() }

// Resize sends a new terminal size.
func (s *Stream) Resize(width, height uint16) error { return s.s.Resize(width, height) }

// Close ends the stream.
func (s *Stream) Close() error { return s.s.Close() }

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

// ExecRetention is how many finished exec'd processes a container keeps
// (exit record, log, entry in State.Execs) before the oldest are removed.
const ExecRetention = 100 // the shim's (shim.ExecRetention); a manager must not import the shim

// ReasonInitExited is the Reason of an exec'd process that was killed
// because the container's init exited.
const ReasonInitExited = "killed: container init exited"

// Exec starts a process in the running container through the OCI
// runtime's exec. opts.ID names it (the container ID rule) and must not name
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
	if err := ids.ValidID(opts.ID); err != nil {
		return nil, nil, fmt.Errorf("exec ID: %w", err)
	}
	pid, cs, err := c.client().Exec(ctx, client.ExecOpts{ID: opts.ID, Process: opts.Process,
		Terminal: opts.Terminal, Stdin: opts.Stdin, Attach: opts.Attach})
	if err != nil {
		if len(opts.Process.Args) > 0 {
			err = explainCommand(err, opts.Process.Args[0])
		}
		return nil, nil, c.wrap("exec", err)
	}
	st := &State{ID: opts.ID, Status: StatusRunning, Pid: pid}
	if cs == nil {
		return st, nil, nil
	}
	return st, &Stream{s: cs}, nil
}

// Attach streams the live output of init ("" ) or of an exec'd process,
// and takes input for it.
func (c *Container) Attach(ctx context.Context, exec string) (*Stream, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	s, err := c.client().Attach(ctx, exec)
	if err != nil {
		return nil, c.wrap("attach", err)
	}
	return &Stream{s: s}, nil
}

// CloseStdin ends the input of init ("") or of an exec'd process.
func (c *Container) CloseStdin(ctx context.Context, exec string) error {
	return c.wrap("close stdin", c.client().CloseStdin(ctx, exec))
}

// Resize sets the terminal size of init ("") or of an exec'd process.
func (c *Container) Resize(ctx context.Context, exec string, width, height uint16) error {
	return c.wrap("resize", c.client().Resize(ctx, exec, width, height))
}
