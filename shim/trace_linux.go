package shim

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/cnproc"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/ptrace"
	"github.com/tether-run/tether/store"
)

// TraceExitAction is the shim action
// "trace-exit --root R --id ID --pid PID --start T [--exec NAME]": trace
// the adopted process PID (whose /proc start time is T) with
// PTRACE_SEIZE until it exits, write its exit record as the shim's normal
// path does, print "exit STATUS" and end.
//
// Why: a shim that adopts an orphaned init is not its parent, so it cannot
// wait for it. As root it learns the status from the kernel's process
// events connector, which needs CAP_NET_ADMIN in the host's user
// namespace: never available rootless. A tracer may wait for its tracee,
// and an unprivileged user may trace its own container's processes (it
// has CAP_SYS_PTRACE in the container's user namespace). The tracer is a
// process of its own, not a thread of the shim, because the shim's reaper
// owns every wait4 of the shim's children and a tracee counts as one.
//
// The tracer keeps out of the container's way: it only seizes (no
// SIGSTOP, no stop at attach), resumes every stop at once, passes every
// signal on, keeps a group stop (SIGSTOP) a stop with PTRACE_LISTEN, and
// sets no PTRACE_O_EXITKILL: if the tracer dies, the kernel detaches it and
// the container runs on. Its cost is a round trip through the tracer for
// each signal the traced process receives and once at its exit; system
// calls are not traced (README "Rootless").
//
// It prints "attached" once it traces the process, or "unknown: REASON"
// (already traced by a debugger, gone, its pid reused) and ends; then
// "exit STATUS" once the exit record is written.
const TraceExitAction = "trace-exit"

// TraceExitMain runs TraceExitAction with args (those after the action)
// and returns the exit code for the process: 0, or 2 after it printed a
// usage error on stderr.
func TraceExitMain(args []string) int {
	if err := TraceExit(args); err != nil {
		fmt.Fprintln(os.Stderr, TraceExitAction+":", err)
		return 2
	}
	return 0
}

// TraceExit is the body of TraceExitAction; args follow the action.
func TraceExit(args []string) error {
	fs := flag.NewFlagSet(TraceExitAction, flag.ContinueOnError)
	root := fs.String("root", "", "runtime root")
	id := fs.String("id", "", "container ID")
	pid := fs.Int("pid", 0, "process to trace")
	start := fs.Uint64("start", 0, "its start time (/proc/PID/stat field 22)")
	execName := fs.String("exec", "", "the exec'd process's name; empty for init")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" || ids.ValidID(*id) != nil || *pid <= 0 {
		return fmt.Errorf("%w: usage: %s --root DIR --id ID --pid PID --start T [--exec NAME]", ErrInvalid, TraceExitAction)
	}
	files := store.At(*root, *id).Init()
	if *execName != "" {
		files = store.At(*root, *id).Exec(*execName)
	}
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	status, err := traceExit(*pid, *start, func() { say("attached") })
	if err != nil {
		say("unknown: %v", err)
		return nil
	}
	rec := &store.ExitRecord{Pid: *pid, Status: status, ExitedAt: time.Now().UTC()}
	if err := files.WriteExit(rec); err != nil {
		say("exit %d (record not written: %v)", status, err)
		return nil
	}
	say("exit %d", status)
	return nil
}

// traceExit seizes pid, checks it is still the process that started at
// start, calls attached, and resumes it through every stop until it exits;
// it returns the exit status (128+N for death by signal N).
func traceExit(pid int, start uint64, attached func()) (int, error) {
	runtime.LockOSThread() // ptrace requests come from the tracing thread
	defer runtime.UnlockOSThread()
	if err := ptrace.Seize(pid, start); err != nil {
		return 0, err
	}
	attached()
	return ptrace.Follow(pid)
}

// exitTracer is a running TraceExitAction helper of this shim, or (handed)
// one the image before an in-place upgrade started, which only leaves its
// exit record.
type exitTracer struct {
	out    *bufio.Reader
	pipe   io.Closer
	wait   func() (int, error)
	handed bool
}

// handedTracer is, after an in-place upgrade, the tracer the old image
// started for the adopted process pid, when one traces it (rootless: no
// process events connector); nil otherwise.
func handedTracer(cn *cnproc.Listener, pid int) *exitTracer {
	if cn != nil || tracerPid(pid) == 0 {
		return nil
	}
	return &exitTracer{handed: true}
}

// traceTimeout bounds how long the shim waits for a tracer to attach,
// and for its last word once the traced process has exited.
const traceTimeout = 5 * time.Second

// startTracer starts a tracer of the adopted process pid (exec name, ""
// for init) and waits until it traces it. It returns nil, with the reason
// logged, when it cannot: the exit status will then be unknown.
func (s *Shim) startTracer(name string, pid proc.Identity) *exitTracer {
	r, w, err := os.Pipe()
	if err != nil {
		s.log.WithError(err).Warn("no exit tracer")
		return nil
	}
	args := []string{TraceExitAction, "--root", s.st.Root(), "--id", s.id,
		"--pid", strconv.Itoa(pid.Pid), "--start", strconv.FormatUint(pid.StartTime, 10)}
	if name != "" {
		args = append(args, "--exec", name)
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Stdout = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no signal to the shim's group reaches it
	wait, err := s.StartCommand(cmd)
	w.Close()
	if err != nil {
		r.Close()
		s.log.WithError(err).Warn("no exit tracer")
		return nil
	}
	t := &exitTracer{out: bufio.NewReader(r), pipe: r, wait: wait}
	line, err := t.line(traceTimeout)
	if line != "attached" {
		cmd.Process.Kill() // still our unreaped child: wait below reaps it
		t.close()
		s.log.WithError(err).WithFields(map[string]any{"exec": name, "pid": pid.Pid, "tracer": line}).
			Warn("exit status of the adopted process will be unknown: it cannot be traced")
		return nil
	}
	return t
}

// line reads the tracer's next line, waiting at most d.
func (t *exitTracer) line(d time.Duration) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := t.out.ReadString('\n')
		ch <- result{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(d):
		return "", fmt.Errorf("exit tracer silent for %v", d)
	}
}

// status is the exit status of the traced process pid (files are its
// records), once it has exited.
func (t *exitTracer) status(files store.Proc, pid int) (int, error) {
	if t.handed {
		if status, ok := tracedExit(files, pid); ok {
			return status, nil
		}
		return 0, fmt.Errorf("no exit record from the tracer of the shim before its upgrade")
	}
	defer t.close()
	line, err := t.line(traceTimeout)
	if err != nil && line == "" {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) >= 2 && f[0] == "exit" {
		if n, err := strconv.Atoi(f[1]); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("exit tracer: %s", line)
}

func (t *exitTracer) close() {
	if t.handed {
		return
	}
	t.pipe.Close()
	go t.wait() // it ends once it has written; the reaper reaps it
}

// tracerPid is the TracerPid of pid's /proc status, 0 when untraced or
// unreadable.
func tracerPid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// tracedExit waits up to traceTimeout for the exit record a tracer writes
// for pid (one with no reason) and returns its status.
func tracedExit(files store.Proc, pid int) (int, bool) {
	for end := time.Now().Add(traceTimeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if rec, err := files.ReadExit(); err == nil && rec.Pid == pid && rec.Reason == "" {
			return rec.Status, true
		}
	}
	return 0, false
}
