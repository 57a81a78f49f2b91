package control

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/shimapi"
)

// Bounds of the auto-remove's waits for the requests being served: a
// client that does not read its stream does not keep the container, nor
// the shim, forever.
const (
	answerTimeout = 10 * time.Second // answers to the exit (wait replies, exit frames)
	lastTimeout   = 2 * time.Second  // requests that came during the delete
)

// holdRequest counts a request read from a connection until the returned
// function is called: once its answer, and for a stream its exit frame,
// has been written or has failed.
func (s *Server) holdRequest(msg shimapi.Message) func() {
	if msg == nil {
		return func() {}
	}
	s.serving.Add(1)
	return func() { s.serving.Add(-1) }
}

// drain waits, at most d, until no request is being served.
func (s *Server) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for s.serving.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// AutoRemove removes the container once its init has exited, for a
// record that asks for it (auto_remove): by then the core has written the
// exit record durably and journaled the exit. It waits for the requests
// being served at that moment (wait, attach, a foreground run's stream,
// a start that raced with the exit) to have their answer written, at
// most answerTimeout, then deletes the container (runtime container,
// exec'd processes, folder with a bundle written in it; the core
// journals deleted), lets the requests that came meanwhile finish, and
// closes the server, so the shim exits. If the delete fails the shim
// serves on and the container stays, stopped, for a manager's delete. It
// returns at once when ctx ends first. Serve runs it; it waits for the
// core's Create, Adopt or in-place upgrade to be done first.
func (s *Server) AutoRemove(ctx context.Context) {
	if _, err := s.core.Wait(ctx, ""); err != nil {
		return
	}
	crashPoint("shim-before-auto-remove") // recovery tests only
	s.drain(answerTimeout)
	if !s.enterOutsideUpgrade(ctx) {
		return
	}
	defer s.q.leave()
	if err := s.core.Delete(context.WithoutCancel(ctx), true); err != nil {
		s.log.WithError(err).Error("auto-remove failed: the container stays, stopped")
		return
	}
	s.log.Info("container removed after its exit (auto-remove)")
	s.stopAccepting()
	s.drain(lastTimeout)
	s.Close()
}

// enterOutsideUpgrade counts the removal as a request under way, so that
// no in-place upgrade freezes the core in the middle of it (an upgrade
// waits for requests under way); while an upgrade is under way it waits:
// if the upgrade succeeds, this image is gone and the new one removes the
// container, and if it is abandoned, this one does. It reports false when
// ctx ended first.
func (s *Server) enterOutsideUpgrade(ctx context.Context) bool {
	for {
		s.q.mu.Lock()
		if !s.q.paused {
			s.q.busy++
			s.q.mu.Unlock()
			return true
		}
		s.q.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stopAccepting closes the listener: no connection is taken from now on.
func (s *Server) stopAccepting() {
	s.lnMu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.lnMu.Unlock()
}

// crashPoint kills the shim with SIGKILL when TETHER_CRASH_POINT (a
// comma-separated list, inherited from the manager that started the shim)
// names this point, as the core's and the manager's crash points do. It
// exists for the recovery tests and does nothing otherwise.
func crashPoint(name string) {
	if slices.Contains(strings.Split(os.Getenv("TETHER_CRASH_POINT"), ","), name) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
