package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/internal/signals"
	"github.com/tether-run/tether/store"
)

// StopSignalAnnotation is the bundle annotation that names the signal
// Stop sends first (a name such as SIGQUIT, or a number): the key the OCI
// image spec's conversion gives an image's StopSignal. Without it Stop
// sends SIGTERM.
const StopSignalAnnotation = "org.opencontainers.image.stopSignal"

// DefaultStopGrace is the grace period of a Stop given none.
const DefaultStopGrace = 10 * time.Second

// stopKillTimeout bounds the wait for init's exit after SIGKILL.
const stopKillTimeout = 10 * time.Second

// Stop ends the container: sig (0: the bundle's StopSignalAnnotation, or
// SIGTERM) to init through the runtime, a paused container thawed so it
// can act on it, then, if init still runs after grace (negative: 0),
// SIGKILL to every process of the container. A created container is
// sent SIGKILL at once (its init never ran the command), so it exits 137. It returns init's exit
// record once it is durable. A container that has stopped already gives
// its exit record at once.
//
// The work runs on the shim's own context: when ctx ends (the client went
// away) Stop returns ctx's error but the stop goes on to its end.
func (s *Shim) Stop(ctx context.Context, sig syscall.Signal, grace time.Duration) (*store.ExitRecord, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if sig < 0 || sig > signals.Max {
		return nil, fmt.Errorf("%w: signal %d", ErrInvalid, sig)
	}
	if sig == 0 {
		sig = s.stopSignal()
	}
	type result struct {
		exit *store.ExitRecord
		err  error
	}
	done := make(chan result, 1)
	s.stopping.Add(1) // an upgrade now would cut the stop short
	go func() {
		defer s.stopping.Add(-1)
		exit, err := s.stop(s.ctx, sig, max(grace, 0))
		done <- result{exit, err}
	}()
	select {
	case r := <-done:
		return r.exit, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stop is Stop's work.
func (s *Shim) stop(ctx context.Context, sig syscall.Signal, grace time.Duration) (*store.ExitRecord, error) {
	p := s.init
	status, _, exit := p.current()
	switch status {
	case StatusStopped:
		return exit, nil
	case StatusCreated:
		// Its init never ran the command: nothing to let finish, and
		// the runtime's own init process (not the container's command)
		// would die of sig with a status of its own (runc's Go init
		// exits 2 on SIGTERM). SIGKILL gives 137 under every runtime.
		sig, grace = syscall.SIGKILL, 0
	}
	s.log.WithField("signal", int(sig)).WithField("grace", grace.String()).Info("stopping")
	// Journaled first: a quick exit must come after it in the journal.
	s.journal(store.Event{Type: store.EventStopSignaled, Signal: int(sig)})
	err := s.Kill(ctx, "", sig, false)
	switch {
	case err == nil:
		s.thawForStop(ctx)
	case errors.Is(err, ErrNotRunning):
	default:
		s.log.WithError(err).Warn("stop signal not sent: killing at once")
		grace = 0
	}
	if s.awaitInit(grace) {
		return s.initExit()
	}
	s.killForStop(ctx)
	if !s.awaitInit(stopKillTimeout) {
		_, pid, _ := p.current()
		return nil, fmt.Errorf("container %s: init pid %d did not exit after SIGKILL", s.id, pid.Pid)
	}
	return s.initExit()
}

// thawForStop resumes a paused container after the stop signal, so that
// it can act on it (a frozen process does not run its handler).
func (s *Shim) thawForStop(ctx context.Context) {
	if status, _, _ := s.init.current(); status != StatusPaused {
		return
	}
	if err := s.Resume(ctx); err != nil {
		s.log.WithError(err).Debug("resume for stop")
	}
}

// killForStop sends SIGKILL to every process of the container through the
// runtime, or to init by its recorded identity when the runtime fails.
func (s *Shim) killForStop(ctx context.Context) {
	if err := s.Kill(ctx, "", syscall.SIGKILL, true); err != nil && !errors.Is(err, ErrNotRunning) {
		s.log.WithError(err).Warn("runtime kill for stop failed: killing init by identity")
	}
	// Init too, by its identity, whatever the runtime said: a runtime
	// whose state is wrong (or whose kill --all missed it) must not keep
	// a stop from ending. The identity check keeps a reused pid safe.
	_, pid, _ := s.init.current()
	pid.Signal(syscall.SIGKILL) // ErrGone: it died meanwhile
}

// awaitInit waits at most d for init's exit record; it reports whether
// init has exited.
func (s *Shim) awaitInit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.init.done:
		return true
	case <-t.C:
		return false
	}
}

// initExit is init's exit record once done is closed.
func (s *Shim) initExit() (*store.ExitRecord, error) {
	_, _, exit := s.init.current()
	if exit == nil {
		return nil, fmt.Errorf("container %s: exit not recorded", s.id)
	}
	return exit, nil
}

// stopSignal is the signal the bundle's StopSignalAnnotation names, or
// SIGTERM when there is none or it cannot be read (logged).
func (s *Shim) stopSignal() syscall.Signal {
	sig, err := BundleStopSignal(s.rec.Bundle)
	if err != nil {
		s.log.WithError(err).Warn("stop signal annotation ignored: sending SIGTERM")
		return syscall.SIGTERM
	}
	return sig
}

// BundleStopSignal reads the StopSignalAnnotation of the bundle's
// config.json: SIGTERM when it has none, an error when it names no signal
// or the config cannot be read.
func BundleStopSignal(bundle string) (syscall.Signal, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return 0, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return 0, fmt.Errorf("bundle config: %w", err)
	}
	name, ok := spec.Annotations[StopSignalAnnotation]
	if !ok {
		return syscall.SIGTERM, nil
	}
	sig, err := signals.Parse(name)
	if err != nil {
		return 0, fmt.Errorf("annotation %s: %w", StopSignalAnnotation, err)
	}
	return sig, nil
}
