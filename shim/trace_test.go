package shim

import (
	"bufio"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/tether-run/tether/internal/proc"
	"golang.org/x/sys/unix"
)

// traceChild starts sh -c script and returns its identity; the test
// reaps it through traceExit (or kills it at cleanup).
func traceChild(t *testing.T, script string) proc.Identity {
	id, _ := traceChildOut(t, script)
	return id
}

// traceChildOut is traceChild with the child's stdout.
func traceChildOut(t *testing.T, script string) (proc.Identity, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	id, err := proc.Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return id, bufio.NewReader(out)
}

// TestTraceExit: the tracer returns the true status of an exit and of a
// death by signal, passes a signal on to the traced process (its trap
// runs), keeps a SIGSTOP a stop that SIGCONT ends, and refuses a process
// already traced or whose start time differs.
func TestTraceExit(t *testing.T) {
	cases := []struct {
		name   string
		script string
		poke   func(pid int)
		want   int
	}{
		{"exit", "read x < /dev/null; sleep 0.2; exit 7", nil, 7},
		{"signal", "sleep 5", func(pid int) { syscall.Kill(pid, syscall.SIGTERM) }, 143},
		{"passed-on", `trap "exit 9" USR1; echo ready; while :; do sleep 0.05; done`, func(pid int) { syscall.Kill(pid, syscall.SIGUSR1) }, 9},
		{"stop-cont", `trap "exit 4" USR2; echo ready; while :; do sleep 0.05; done`, func(pid int) {
			syscall.Kill(pid, syscall.SIGSTOP)
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGUSR2)
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, out := traceChildOut(t, c.script)
			got, err := traceExit(id.Pid, id.StartTime, func() {
				if strings.Contains(c.script, "echo ready") {
					out.ReadString('\n') // its trap is set
				}
				if c.poke != nil {
					c.poke(id.Pid)
				}
			})
			if err != nil || got != c.want {
				t.Errorf("traceExit: %d %v, want %d", got, err, c.want)
			}
		})
	}

	t.Run("reused-pid", func(t *testing.T) {
		id := traceChild(t, "sleep 5")
		if _, err := traceExit(id.Pid, id.StartTime+1, func() { t.Error("attached to another process") }); err == nil {
			t.Error("traced a process whose start time differs")
		}
	})
	t.Run("already-traced", func(t *testing.T) {
		id := traceChild(t, "sleep 5")
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := unix.PtraceSeize(id.Pid); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { // another thread: a second tracer
			_, err := traceExit(id.Pid, id.StartTime, func() {})
			done <- err
		}()
		if err := <-done; err == nil || !strings.Contains(err.Error(), "already traced") {
			t.Errorf("second tracer: %v, want a refusal naming the debugger", err)
		}
	})
}
