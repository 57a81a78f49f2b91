package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-run/tether/runtime"
)

// The library's errors say what went wrong; the CLI says what to type
// about it. Each hint is added here, from the sentinel and the container's
// state, never from the message text.

// execHint adds what to do to an exec refused because the container does
// not run: start it, or resume it.
func execHint(ctx context.Context, c *runtime.Container, err error) error {
	if !errors.Is(err, runtime.ErrNotRunning) {
		return err
	}
	st, serr := c.State(ctx)
	if serr != nil {
		return err
	}
	switch st.Status {
	case runtime.StatusPaused:
		return fmt.Errorf("%w: resume it with 'tether resume %s' before exec", err, c.ID())
	case runtime.StatusCreated:
		return fmt.Errorf("%w: start it with 'tether start %s' before exec", err, c.ID())
	}
	return err
}

// deleteHint adds what to do to a delete refused because the container
// runs.
func deleteHint(c *runtime.Container, err error) error {
	if errors.Is(err, runtime.ErrRunning) {
		return fmt.Errorf("%w: stop it with 'tether kill %s' or use 'tether delete --force %s'", err, c.ID(), c.ID())
	}
	return err
}
