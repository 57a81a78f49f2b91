package shim

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/store"
)

// readyShim is execTestShim marked created, so its operations run.
func readyShim(t *testing.T) *Shim {
	s := execTestShim(t)
	s.created = make(chan struct{})
	close(s.created)
	return s
}

// TestD1ExecInvisibleUntilIOReady: an exec whose start is under way (its
// ID reserved, its IO not set up yet) is not found by resize, stdin,
// close-stdin or attach: they used to reach a nil IO and kill the shim.
func TestD1ExecInvisibleUntilIOReady(t *testing.T) {
	s := readyShim(t)
	if _, err := s.reserveExec(ExecConfig{ID: "e", Process: specs.Process{Args: []string{"true"}}}); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"resize":      func() error { return s.Resize("e", 80, 24) },
		"close stdin": func() error { return s.CloseStdin("e") },
		"write stdin": func() error { return s.WriteStdin("e", []byte("x")) },
		"attach":      func() error { _, err := s.Attach("e"); return err },
	} {
		if err := op(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s on a starting exec: %v, want ErrNotFound", name, err)
		}
	}
}

// TestD2DropExecWakesWaiters: a wait on an exec that then fails to start
// returns with the cause instead of blocking for ever.
func TestD2DropExecWakesWaiters(t *testing.T) {
	s := readyShim(t)
	p, err := s.reserveExec(ExecConfig{ID: "e", Process: specs.Process{Args: []string{"nosuch"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := s.Wait(context.Background(), "e")
		got <- err
	}()
	time.Sleep(50 * time.Millisecond) // the wait is blocked on the exec now
	s.dropExec(p, ErrCommandNotFound)
	select {
	case err := <-got:
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrCommandNotFound) {
			t.Fatalf("wait returned %v, want ErrNotFound with the cause", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait still blocked after the exec failed to start")
	}
}

// TestD3NoConsoleFolderWithoutTerminal: with a root too long for a socket
// address, a process without a terminal makes no console folder (one was
// left in the temporary folder for every create and exec).
func TestD3NoConsoleFolderWithoutTerminal(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	long := filepath.Join(t.TempDir(), strings.Repeat("r", 100))
	st := store.At(long, "c1")
	if err := st.Make(); err != nil {
		t.Fatal(err)
	}
	s := execTestShim(t)
	log, err := crilog.Open(filepath.Join(t.TempDir(), "log"), crilog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pio := &procIO{log: log}
	defer pio.close()
	err = s.withIO(context.Background(), pio, false, false, nil, st.Init(), func(*stdioFiles, string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("left in the temporary folder: %v", ents)
	}
}

// TestD4PollErrorIsNotAnExit: when waiting on an adopted process's pidfd
// fails while it still runs, it is watched again; its exit is recorded
// only once it has really ended (it used to be recorded at once, 255).
func TestD4PollErrorIsNotAnExit(t *testing.T) {
	s := readyShim(t)
	cmd := exec.Command("sleep", "1.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan time.Time, 1)
	go func() { cmd.Wait(); ended <- time.Now() }()
	id, err := proc.Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := id.Open()
	if err != nil {
		t.Fatal(err)
	}
	var fails atomic.Int32
	s.waitFd = func(fd int, d time.Duration) bool {
		if fails.Add(1) <= 2 {
			return false // as a failed poll does
		}
		return proc.WaitFd(fd, d)
	}
	files := s.st.Exec("a")
	log, err := crilog.Open(files.LogPath(), crilog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.newProcess("a", files, &procIO{log: log})
	p.status, p.pid = StatusRunning, id
	s.execs["a"] = p
	s.watchAdopted(p, fd, nil, nil)
	var end time.Time
	select {
	case end = <-ended:
	default:
		t.Fatal("exit recorded while the process still ran")
	}
	exit, err := files.ReadExit()
	if err != nil || exit.ExitedAt.Before(end.Add(-100*time.Millisecond)) {
		t.Fatalf("exit record %+v (%v) before the process ended at %v", exit, err, end)
	}
}

// TestD7ExitGoesThroughTheTable: a second exit of one process is refused by
// the state table (it used to overwrite the status directly).
func TestD7ExitGoesThroughTheTable(t *testing.T) {
	s := readyShim(t)
	p := execTestStart(t, s, "e")
	if _, err := p.exited(reaper.Exit{Pid: 1, Status: 0, Timestamp: time.Now()}, "", 0); err != nil {
		t.Fatal(err)
	}
	var te *TransitionError
	if _, err := p.exited(reaper.Exit{Pid: 1, Status: 9, Timestamp: time.Now()}, "", 0); !errors.As(err, &te) {
		t.Fatalf("second exit: %v, want a TransitionError", err)
	}
	if err := p.transition(StatusRunning); err == nil {
		t.Fatal("a stopped process went back to running")
	}
}

// TestD9ReserveFailureIsLogged: a process whose exit record cannot have
// its room reserved says so (the full-disk guarantee is off).
func TestD9ReserveFailureIsLogged(t *testing.T) {
	s := execTestShim(t)
	logger, hook := test.NewNullLogger()
	s.log = logrus.NewEntry(logger)
	bad := store.At(filepath.Join(t.TempDir(), "missing", "root"), "c1") // no folder: even root cannot reserve there
	s.newProcess("", bad.Init(), nil)
	found := false
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "no room reserved") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no warning logged: %v", hook.AllEntries())
	}
}
