package conmon

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/proc"
)

// TestTraceInit traces a process (here the test's child; the watcher's
// tracees are not its children, which the kernel treats alike), checks
// that a handled signal still reaches it, and that its status is written.
func TestTraceInit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		status int
	}{
		{"a handled signal reaches it and its exit code is written", syscall.SIGUSR1, 5},
		{"death by a signal is 128+N", syscall.SIGKILL, 128 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// The tracee is the child of a shell that waits for it and
			// exits with its status, as a monitor is the parent of init.
			cmd := exec.Command("sh", "-c", `sh -c 'trap "exit 5" USR1; echo ready; while :; do sleep 0.05; done' & echo $!; wait $!`)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// its pid and its "ready" (the trap is set), in either order
			r := bufio.NewReader(out)
			pid, ready := 0, false
			for i := 0; i < 2; i++ {
				line, _ := r.ReadString('\n')
				if line == "ready\n" {
					ready = true
				} else if pid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
					t.Fatalf("the tracee says %q", line)
				}
			}
			if pid == 0 || !ready {
				t.Fatalf("the tracee's pid %d, ready %v", pid, ready)
			}
			defer syscall.Kill(pid, syscall.SIGKILL)
			id, err := proc.Identify(pid)
			if err != nil {
				t.Fatal(err)
			}
			if err := traceInit(dir, id); err != nil {
				t.Fatalf("trace: %v", err)
			}
			if tr, err := readTraced(filepath.Join(dir, tracedFile)); err != nil || tr.Pid != id.Pid || tr.StartTime != id.StartTime {
				t.Fatalf("%s: %+v, %v", tracedFile, tr, err)
			}
			syscall.Kill(pid, tc.sig)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }() // the real parent still gets the status
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the tracee did not end after %v: the signal was not delivered", tc.sig)
			}
			if got := cmd.ProcessState.ExitCode(); got != tc.status {
				t.Fatalf("the parent saw %d, want %d", got, tc.status)
			}
			var tr tracedExit
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if tr, err = readTraced(filepath.Join(dir, tracedExitFile)); err == nil {
					break
				}
			}
			if err != nil || tr.Status == nil || *tr.Status != tc.status || tr.Pid != id.Pid {
				t.Fatalf("%s: %+v, %v; want status %d", tracedExitFile, tr, err, tc.status)
			}
		})
	}
}
