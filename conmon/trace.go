package conmon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/ptrace"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/store"
)

// Rootless, the watcher has no process events connector (it needs
// CAP_NET_ADMIN in the initial user namespace), so the status of an init
// that outlives its monitor would be unknown. There the watcher traces
// every live init instead: PTRACE_SEIZE, allowed because the watcher runs
// in podman's user namespace with its capabilities, as the container does
// (or in an ancestor of the container's). A tracer that is not the parent
// still waits for its tracee: wait4 gives it the exit status first, then
// the kernel hands the zombie to the real parent (the monitor, or after
// its death whoever inherited the init). The watcher writes that status
// into the container's store folder (tracedExitFile) before it lets go,
// and an adopting monitor whose core could not observe the status takes
// it from there.
//
// What tracing costs the container: each signal delivered to the init's
// main thread stops it until the watcher resumes it with the same signal
// (a round trip through the watcher); a debugger or strace cannot attach
// to the init (it already has a tracer: TracerPid in /proc/PID/status
// names the watcher). Only the init's main thread is traced, not its
// children or other threads. If the watcher dies, the kernel detaches it
// and nothing else changes.

// Files the watcher writes in a container's store folder when it traces.
const (
	tracedFile     = "traced.json"      // the init the watcher traces
	tracedExitFile = "traced-exit.json" // its exit status, once it ended
)

// tracedExit is the content of tracedFile and tracedExitFile.
type tracedExit struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Status    *int   `json:"status,omitempty"`
}

// tracedStatusWait bounds how long an adopter waits for the watcher's
// status after its core saw the init end without one.
const tracedStatusWait = 5 * time.Second

// traceInit traces init from a thread of its own until it ends, then
// writes its status to dir. It returns once the seize succeeded or
// failed; the thread stays with the tracee.
func traceInit(dir string, init proc.Identity) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is the tracer: every ptrace request and the wait come
		// from it, and it ends with the goroutine (never unlocked).
		runtime.LockOSThread()
		if err := ptrace.Seize(init.Pid, init.StartTime); err != nil {
			errc <- err
			return
		}
		writeTraced(filepath.Join(dir, tracedFile), tracedExit{Pid: init.Pid, StartTime: init.StartTime})
		errc <- nil
		if status, err := ptrace.Follow(init.Pid); err == nil {
			writeTraced(filepath.Join(dir, tracedExitFile), tracedExit{Pid: init.Pid, StartTime: init.StartTime, Status: &status})
		}
	}()
	return <-errc
}

func writeTraced(path string, t tracedExit) {
	b, _ := json.Marshal(&t)
	atomicfile.WriteFile(path, b, 0o600)
}

func readTraced(path string) (tracedExit, error) {
	var t tracedExit
	b, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(b, &t)
}

// tracedStatus is the status the watcher's tracer saw for init, if it
// traced it; having traced it, it is waited for a little (the core learns
// of the end through a pidfd, which wakes before the tracer's wait).
func tracedStatus(st *store.Folder, init proc.Identity) (int, bool) {
	t, err := readTraced(filepath.Join(st.Dir(), tracedFile))
	if err != nil || t.Pid != init.Pid || t.StartTime != init.StartTime {
		return 0, false
	}
	deadline := time.Now().Add(tracedStatusWait)
	for {
		t, err := readTraced(filepath.Join(st.Dir(), tracedExitFile))
		if err == nil && t.Status != nil && t.Pid == init.Pid && t.StartTime == init.StartTime {
			return *t.Status, true
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withTracedStatus replaces an adopted init's unknown status with the one
// the watcher's tracer saw, and records it in the core's exit record.
func (f *frontEnd) withTracedStatus(exit *store.ExitRecord) *store.ExitRecord {
	if exit == nil || !strings.HasPrefix(exit.Reason, shim.ReasonAdoptedUnknown) {
		return exit
	}
	init, err := f.st.Init().ReadPid()
	if err != nil || init.Pid != exit.Pid {
		return exit
	}
	status, ok := tracedStatus(f.st, init)
	if !ok {
		return exit
	}
	e := *exit
	e.Status, e.Reason = status, ""
	if err := f.st.Init().WriteExit(&e); err != nil {
		f.log.WithError(err).Warn("record the traced exit status")
	}
	f.log.WithField("status", status).Info("exit status from the watcher's tracer")
	return &e
}
