package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/runtime"
)

// The library's errors and state reasons say what went wrong; the CLI
// says what to type about it. Each hint is added here, from the remedy the
// library attached (runtime.RemedyError, State.Remedy), the sentinel and
// the container's state, never from the message text.

// withHint adds to err the command that deals with it, when the library
// said what can be done (runtime.RemedyError). Every command's error
// passes through it (report).
func withHint(err error) error {
	re := runtime.RemedyOf(err)
	if re == nil {
		return err
	}
	h := remedyHint(re.Remedy, re.ID, re.Exec, re.Terminal)
	switch {
	case h == "":
		return err
	case strings.HasPrefix(h, "or "): // another way to the fix the message gives
		return fmt.Errorf("%w %s", err, h)
	}
	return fmt.Errorf("%w: %s", err, h)
}

// remedyHint is remedy r, about container id (and exec'd process exec),
// as the command to type.
func remedyHint(r runtime.Remedy, id, exec string, terminal bool) string {
	switch r {
	case runtime.RemedyForceDelete:
		return fmt.Sprintf("remove it with 'tether delete --force %s'", id)
	case runtime.RemedyKillExec:
		return fmt.Sprintf("kill it with 'tether kill --exec-id %s %s'", exec, id)
	case runtime.RemedyOtherID:
		return fmt.Sprintf("pick another ID or remove it with 'tether delete %s'", id)
	case runtime.RemedyListIDs:
		return "see 'tether list'"
	case runtime.RemedyOtherRoot:
		return "pick a writable folder with --root"
	case runtime.RemedyRuntimeDir:
		return "set XDG_RUNTIME_DIR to a folder of your own (mode 0700), or pick a writable folder with --root"
	case runtime.RemedyOtherRuntime:
		return "or choose another with --runtime"
	case runtime.RemedyTerminalBundle:
		if terminal {
			return "-t needs a terminal bundle: 'tether bundle -t DIR' writes one, or leave out -t"
		}
		return "the bundle wants a terminal: add -t, or write one without with 'tether bundle DIR'"
	}
	return ""
}

// stateHint adds the command to type to a state's reason, when the
// library said what can be done about it (State.Remedy). st is changed.
func stateHint(st *runtime.State) *runtime.State {
	if h := remedyHint(st.Remedy, st.ID, "", false); h != "" && st.Reason != "" {
		st.Reason += ": " + h
	}
	return st
}

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
	if errors.Is(err, runtime.ErrRunning) && runtime.RemedyOf(err) == nil {
		return fmt.Errorf("%w: stop it with 'tether kill %s' or use 'tether delete --force %s'", err, c.ID(), c.ID())
	}
	return err
}

// createHint adds to a refused create how to write a bundle, when the
// bundle was the user's (not one tether wrote: opts.WriteBundle).
func createHint(err error, bundleDir string, opts runtime.CreateOpts) error {
	if err == nil || opts.WriteBundle != nil {
		return err
	}
	return bundleHint(err, bundleDir)
}

// bundleHint adds how to write a bundle to a create refused because dir
// ("" for the current folder) is no bundle or its config.json is bad.
func bundleHint(err error, dir string) error {
	if dir == "" {
		dir = "."
	}
	abs, aerr := filepath.Abs(dir)
	if aerr != nil {
		abs = dir
	}
	switch {
	case errors.Is(err, bundle.ErrBadConfig):
		return fmt.Errorf("%w; or write a new bundle with 'tether bundle NEWDIR'", err)
	case !errors.Is(err, bundle.ErrNoBundle):
		return err
	}
	fi, serr := os.Stat(abs)
	switch {
	case errors.Is(serr, os.ErrNotExist):
		return fmt.Errorf("%w: write a bundle there with 'tether bundle %s'", err, abs)
	case serr != nil || !fi.IsDir():
		return err
	}
	// 'tether bundle' writes only into an empty or new folder; a folder
	// that holds something (usually a rootfs) gets runc's default config.
	if ents, rerr := os.ReadDir(abs); rerr == nil && len(ents) == 0 {
		return fmt.Errorf("%w: create one with 'tether bundle %s'", err, abs)
	}
	return fmt.Errorf("%w: write a default one with 'runc spec' in that folder, or a whole new bundle with 'tether bundle NEWDIR'", err)
}
