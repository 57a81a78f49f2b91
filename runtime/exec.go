package runtime

import (
	"context"
	"fmt"

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

// Exec starts a process in the running container. With opts.Attach the
// returned Stream carries its IO; otherwise its output goes to its own log
// in the container folder. The returned state holds its pid.
func (c *Container) Exec(ctx context.Context, opts ExecOpts) (*State, *Stream, error) {
	if err := c.usable(); err != nil {
		return nil, nil, err
	}
	if err := shim.ValidID(opts.ID); err != nil {
		return nil, nil, fmt.Errorf("exec ID: %w", err)
	}
	st, stream, err := c.client().Exec(ctx, opts)
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
