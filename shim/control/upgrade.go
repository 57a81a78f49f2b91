package control

// The upgrade operation: the control socket's part of an in-place shim
// upgrade (see shim.Freeze for the core's). The old image stops accepting
// (connections queue in the listener's backlog), lets the requests under
// way finish, freezes the core, adds the listener and the upgrade
// request's own connection to the handoff, has the new binary check the
// handoff, and execs it. The new image answers the upgrade request on
// that connection once it serves. Waits in flight are not handed over:
// their connections close at the execve and the client asks again (the
// manager's Wait does so by itself), getting the exit from the new image.
// Attach streams end the same way; the client attaches again.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"golang.org/x/sys/unix"
)

// Bounds of an upgrade: the requests under way get settleTimeout to
// finish (a client that connected and sends nothing is cut by
// requestTimeout anyway); the new binary's check mode gets checkTimeout.
const (
	settleTimeout = requestTimeout + time.Second
	checkTimeout  = 10 * time.Second
)

// quiesce counts what an upgrade must wait for: accept loops running and
// requests being served.
type quiesce struct {
	mu     sync.Mutex
	paused bool
	busy   int // accepted connections whose request is not done
	loops  int // accept loops running
}

func (q *quiesce) loopStarted() { q.mu.Lock(); q.loops++; q.mu.Unlock() }
func (q *quiesce) loopEnded()   { q.mu.Lock(); q.loops--; q.mu.Unlock() }
func (q *quiesce) enter()       { q.mu.Lock(); q.busy++; q.mu.Unlock() }
func (q *quiesce) leave()       { q.mu.Lock(); q.busy--; q.mu.Unlock() }

func (q *quiesce) isPaused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.paused
}

// settled reports whether no accept loop runs and no request is served.
func (q *quiesce) settled() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy == 0 && q.loops == 0
}

// front is the control socket's part of a handoff (shim.Handoff.Front).
type front struct {
	Listener int `json:"listener_fd"`
	// Conn carries the upgrade request; Version is its protocol version.
	Conn    int           `json:"conn_fd"`
	Version int           `json:"conn_version"`
	From    shimapi.Build `json:"from"`
}

// upgrade serves an UpgradeReq. It returns only when the upgrade failed,
// with the old image serving again; on success the process is the new
// binary, which answers.
func (c *call) upgrade(ctx context.Context, m shimapi.UpgradeReq) *shimapi.Response {
	s := c.s
	if err := checkBinary(m.Binary); err != nil {
		return c.fail(err)
	}
	c.leave()
	t0 := time.Now()
	ln, err := s.pause()
	if err != nil {
		return c.fail(err)
	}
	h, err := s.core.Freeze(ctx)
	if err != nil {
		s.unpause(ln)
		return c.fail(err)
	}
	err = s.handOver(ctx, c, ln, h, m.Binary, t0)
	// Still here: the upgrade failed before the execve.
	os.Remove(s.st.HandoffPath())
	s.core.Thaw(h)
	s.unpause(ln)
	s.log.WithError(err).WithField("binary", m.Binary).Warn("upgrade abandoned: this binary serves on")
	return c.fail(err)
}

// handOver completes the handoff and execs binary; it returns only on
// failure.
func (s *Server) handOver(ctx context.Context, c *call, ln *net.UnixListener, h *shim.Handoff, binary string, t0 time.Time) error {
	f := front{Version: c.v, From: thisBuild()}
	var err error
	if f.Listener, err = h.Dup(ln); err != nil {
		return err
	}
	if f.Conn, err = h.Dup(c.conn); err != nil {
		return err
	}
	if h.Front, err = json.Marshal(f); err != nil {
		return err
	}
	path := s.st.HandoffPath()
	if err := h.Write(path); err != nil {
		return err
	}
	frozen := time.Now()
	if err := checkHandoff(ctx, binary, s.st.Root(), s.st.ID(), path); err != nil {
		return err
	}
	argv := []string{binary, shimapi.ServeCreate, "--root", s.st.Root(), "--id", s.st.ID(), "--handoff", path}
	if s.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		argv = append(argv, "--debug")
	}
	s.log.WithFields(logrus.Fields{"binary": binary, "freeze_ms": ms(frozen.Sub(t0)), "check_ms": ms(time.Since(frozen))}).
		Info("upgrade: handing the container over to the new binary")
	return h.Exec(binary, argv, os.Environ())
}

// pause stops accepting (new connections wait in the backlog) and waits
// for the requests under way to be answered. On error it has undone that.
func (s *Server) pause() (*net.UnixListener, error) {
	s.q.mu.Lock()
	if s.q.paused {
		s.q.mu.Unlock()
		return nil, fmt.Errorf("%w: an upgrade is already under way", errdefs.ErrInvalid)
	}
	s.q.paused = true
	s.q.mu.Unlock()
	s.lnMu.Lock()
	ln := s.ln
	s.lnMu.Unlock()
	if ln == nil {
		s.unpause(nil)
		return nil, errors.New("the control socket is not listening")
	}
	ln.SetDeadline(time.Unix(1, 0)) // wakes the accept loop, which sees paused
	deadline := time.Now().Add(settleTimeout)
	for !s.q.settled() {
		if time.Now().After(deadline) {
			s.unpause(ln)
			return nil, errors.New("requests under way did not finish in time: try the upgrade again")
		}
		time.Sleep(100 * time.Microsecond)
	}
	return ln, nil
}

// unpause accepts again after an abandoned upgrade.
func (s *Server) unpause(ln *net.UnixListener) {
	s.q.mu.Lock()
	s.q.paused = false
	s.q.mu.Unlock()
	if ln == nil {
		return
	}
	ln.SetDeadline(time.Time{})
	s.lnMu.Lock()
	ctx := s.ctx
	s.lnMu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	go s.acceptLoop(ctx, ln)
}

// checkBinary refuses a new binary that is not there or not executable,
// before anything is stopped.
func checkBinary(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: new shim binary: %v", errdefs.ErrNotFound, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: new shim binary %s is not a regular file", errdefs.ErrInvalid, path)
	}
	if unix.Access(path, unix.X_OK) != nil {
		return fmt.Errorf("%w: new shim binary %s is not executable (chmod +x it)", errdefs.ErrInvalid, path)
	}
	return nil
}

// checkHandoff runs the new binary's check mode on the handoff file. The
// reaper is held meanwhile (the core is frozen), so this one child is
// waited for by os/exec directly; nothing else reaps.
func checkHandoff(ctx context.Context, binary, root, id, path string) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, shimapi.CheckHandoff, "--root", root, "--id", id,
		"--handoff", path).CombinedOutput()
	if err != nil {
		msg, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n") // the first line says it; a usage text follows
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("new shim binary %s refused the handoff (%v): %s; the old binary serves on", binary, err, msg)
	}
	return nil
}

// buildVersion is stamped by make build (-ldflags -X): git describe.
var buildVersion string

// thisBuild names the running binary: its path and version (the stamped
// one, else the VCS revision Go recorded, else "unknown").
func thisBuild() shimapi.Build {
	b := shimapi.Build{Version: "unknown"}
	b.Binary, _ = os.Executable()
	if buildVersion != "" {
		b.Version = buildVersion
		return b
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	var rev, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	switch {
	case rev != "":
		b.Version = rev[:min(12, len(rev))] + dirty
	case bi.Main.Version != "" && bi.Main.Version != "(devel)":
		b.Version = bi.Main.Version
	}
	return b
}

// TakeOver is the new image's side of an upgrade: it serves the listener
// the old image handed over (call it instead of Listen) and returns the
// function that answers the upgrade request, to be called once the core
// has taken over (with its error, if it could not).
func (s *Server) TakeOver(h *shim.Handoff) (answer func(pid int, err error), err error) {
	var f front
	if err := json.Unmarshal(h.Front, &f); err != nil {
		return nil, fmt.Errorf("handoff: control socket part: %w", err)
	}
	if f.Listener < 3 {
		return nil, errors.New("handoff: no control socket listener")
	}
	ln, err := fileListener(f.Listener)
	if err != nil {
		return nil, err
	}
	s.lnMu.Lock()
	s.ln = ln
	s.lnMu.Unlock()
	var conn net.Conn
	if f.Conn >= 3 {
		conn, _ = fileConn(f.Conn)
	}
	return func(pid int, err error) {
		if conn == nil {
			return
		}
		defer conn.Close()
		resp := &shimapi.Response{Version: f.Version,
			Upgrade: &shimapi.Upgrade{Pid: os.Getpid(), From: f.From, To: thisBuild()}}
		if err != nil {
			resp = shimapi.Fail(f.Version, fmt.Errorf("the new shim binary could not take the container over: %w", err))
		}
		conn.SetWriteDeadline(time.Now().Add(requestTimeout))
		shimapi.WriteMessage(conn, resp)
	}, nil
}

// fileListener makes a listener of a handed-over fd.
func fileListener(fd int) (*net.UnixListener, error) {
	f := os.NewFile(uintptr(fd), "control-listener")
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: control socket: %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, errors.New("handoff: control socket is not a unix socket")
	}
	return ul, nil
}

// fileConn makes a connection of a handed-over fd.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "upgrade-conn")
	defer f.Close()
	return net.FileConn(f)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
