package conmon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/reaper"
)

// drainWait bounds how long output is still read after the container's
// process ended (a leftover process may hold the pipes open).
const drainWait = 2 * time.Second

// consoleWait bounds the wait for the runtime's pty master.
const consoleWait = 10 * time.Second

// monitor is one container's (or exec session's) monitor process.
type monitor struct {
	o     *Options
	log   *logrus.Entry
	rm    *reaper.Monitor
	sync  *os.File // _OCI_SYNCPIPE, nil when podman passed none
	sinks []sink
	att   *attachServer
	ctl   *ctlFifo
	stdin *stdinSink
	con   console.Console
	outs  []output
	pid   int

	sinkMu   sync.Mutex
	timedOut atomic.Bool
}

// output is one read end the monitor drains.
type output struct {
	r      io.Reader
	f      *os.File // r as a file when it is a pipe (for deadlines), else nil
	stream crilog.Stream
}

// newMonitor sets up logging of the monitor itself and the reaper.
func newMonitor(o *Options) *monitor {
	return &monitor{o: o, log: monitorLog(o), rm: reaper.New()}
}

// runMonitor is the detached monitor of an exec session: it runs the
// runtime's exec, tells podman the pid, serves output, attach and ctl, and
// records the exit. An exec session has a monitor of its own, as with
// conmon: podman waits for that process and its sync pipe, and a session
// ends with its monitor (they are not adopted).
func runMonitor(o *Options) int {
	m := newMonitor(o)
	if err := reaper.SetSubreaper(); err != nil {
		m.log.WithError(err).Error("set subreaper")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.rm.Run(ctx)
	status, err := m.createAndServe(ctx)
	if err != nil {
		m.log.WithError(err).Error("monitor failed")
		m.report(-1, err.Error())
		return 1
	}
	return m.finish(status, "")
}

// createAndServe runs the runtime, reports the pid and serves until the
// process ends; it returns the process's exit status.
func (m *monitor) createAndServe(ctx context.Context) (int, error) {
	o := m.o
	var err error
	if m.sync, err = pipeFromEnv("_OCI_SYNCPIPE"); err != nil {
		return 0, err
	}
	attachPipe, err := pipeFromEnv("_OCI_ATTACHPIPE")
	if err != nil {
		return 0, err
	}
	if o.ExecAttach && attachPipe == nil {
		return 0, errors.New("--exec-attach given but _OCI_ATTACHPIPE was not")
	}
	rio, err := m.prepareIO()
	if err != nil {
		return 0, err
	}
	if err := m.serveEndpoints(); err != nil {
		rio.close()
		return 0, err
	}
	if attachPipe != nil {
		writeSync(attachPipe, 0, "")
		attachPipe.Close()
		if err := readStartByte("_OCI_STARTPIPE", true); err != nil {
			rio.close()
			return 0, err
		}
	}
	sub := m.rm.Subscribe()
	defer sub.Close()
	pid, err := m.runRuntime(ctx, rio)
	if err != nil {
		return 0, err
	}
	m.pid = pid
	m.report(pid, "")
	if o.Timeout > 0 {
		t := time.AfterFunc(time.Duration(o.Timeout)*time.Second, func() {
			m.timedOut.Store(true)
			syscall.Kill(pid, syscall.SIGKILL)
		})
		defer t.Stop()
	}
	return m.serve(func() int { return waitPid(ctx, sub, pid) }), nil
}

// runtimeIO is what the runtime gets as the process's stdio.
type runtimeIO struct {
	oci.IO
	extra  []*os.File
	cs     *oci.ConsoleSocket // with a terminal
	csPath string
}

// close closes the monitor's copies of the runtime's ends.
func (r *runtimeIO) close() {
	for _, f := range []*os.File{r.Stdin, r.Stdout, r.Stderr} {
		if f != nil && f != os.Stdin && f != os.Stdout && f != os.Stderr {
			f.Close()
		}
	}
	if r.cs != nil {
		r.cs.Close()
		os.Remove(filepath.Dir(r.csPath))
		r.cs = nil
	}
}

// prepareIO makes the pipes (or the console socket) and the sinks.
func (m *monitor) prepareIO() (*runtimeIO, error) {
	o := m.o
	sinks, err := openSinks(o)
	if err != nil {
		return nil, err
	}
	m.sinks = sinks
	m.stdin = &stdinSink{leaveOpen: o.LeaveStdinOpen}
	rio := &runtimeIO{extra: preservedFds(o)}
	if passthrough(o) {
		rio.IO = oci.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		return rio, nil
	}
	if o.Terminal {
		dir, err := os.MkdirTemp("", "tcm")
		if err != nil {
			return nil, err
		}
		rio.csPath = filepath.Join(dir, "c.sock")
		if rio.cs, err = oci.ListenConsole(rio.csPath); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		return rio, nil
	}
	if o.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		rio.Stdin = r
		m.stdin.w, m.stdin.closer = w, w
	}
	for _, s := range []crilog.Stream{crilog.Stdout, crilog.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			rio.close()
			return nil, err
		}
		m.outs = append(m.outs, output{r: r, f: r, stream: s})
		if s == crilog.Stdout {
			rio.Stdout = w
		} else {
			rio.Stderr = w
		}
	}
	return rio, nil
}

// preservedFds returns podman's --preserve-fds files (fds 3...).
func preservedFds(o *Options) []*os.File {
	for i, a := range o.RuntimeOpts {
		v, ok := strings.CutPrefix(a, "--preserve-fds=")
		if !ok && a == "--preserve-fds" && i+1 < len(o.RuntimeOpts) {
			v, ok = o.RuntimeOpts[i+1], true
		}
		if n, err := strconv.Atoi(v); ok && err == nil && n > 0 {
			var fs []*os.File
			for fd := 3; fd < 3+n; fd++ {
				fs = append(fs, os.NewFile(uintptr(fd), "preserved"))
			}
			return fs
		}
	}
	return nil
}

// serveEndpoints binds the attach socket and the ctl fifo.
func (m *monitor) serveEndpoints() error {
	if m.o.Bundle == "" {
		return nil
	}
	att, err := listenAttach(m.o, m.stdin)
	if err != nil {
		return err
	}
	m.att = att
	go att.accept()
	ctl, err := openCtl(m.o.Bundle, m.resize, m.reopenLogs)
	if err != nil {
		return err
	}
	m.ctl = ctl
	return nil
}

func (m *monitor) resize(h, w uint16) {
	if m.con != nil {
		resizer(m.con)(h, w)
	}
}

func (m *monitor) reopenLogs() {
	m.sinkMu.Lock()
	defer m.sinkMu.Unlock()
	for _, s := range m.sinks {
		if f, ok := s.(*fileSink); ok {
			f.w.Reopen()
		}
	}
}

// runtime is the OCI runtime binding for podman's runtime and arguments:
// no --root of Tether's own, the runtime's default state root.
func (m *monitor) runtime() *oci.Runtime {
	return &oci.Runtime{Command: m.o.Runtime, Args: runtimeArgs(m.o), Monitor: m.rm, LogDir: m.o.Bundle}
}

// runRuntime runs the runtime's exec and returns the process's pid.
func (m *monitor) runRuntime(ctx context.Context, rio *runtimeIO) (int, error) {
	o := m.o
	var conCh chan consoleResult
	sockPath := rio.csPath
	if cs := rio.cs; cs != nil {
		conCh = make(chan consoleResult, 1)
		go func() {
			c, err := cs.Receive()
			conCh <- consoleResult{c, err}
		}()
	}
	defer rio.close()
	if err := m.exec(ctx, m.runtime(), rio, sockPath); err != nil {
		return 0, runtimeError(o, err)
	}
	if conCh != nil {
		select {
		case r := <-conCh:
			if r.err != nil {
				return 0, fmt.Errorf("runtime did not set up terminal: %w", r.err)
			}
			m.con = r.c
			m.stdin.w = r.c
			m.outs = append(m.outs, output{r: r.c, stream: crilog.Stdout})
		case <-time.After(consoleWait):
			return 0, errors.New("runtime did not set up terminal")
		}
	}
	pid, err := oci.ReadPidFile(o.ContainerPidFile)
	if err != nil {
		return 0, fmt.Errorf("read the pid file: %w", err)
	}
	return pid, nil
}

type consoleResult struct {
	c   console.Console
	err error
}

// exec runs `runtime exec` with podman's process spec.
func (m *monitor) exec(ctx context.Context, rt *oci.Runtime, rio *runtimeIO, sock string) error {
	data, err := os.ReadFile(m.o.ExecProcessSpec)
	if err != nil {
		return fmt.Errorf("read the exec process spec: %w", err)
	}
	var spec specs.Process
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode the exec process spec %s: %w", m.o.ExecProcessSpec, err)
	}
	_, err = rt.Exec(ctx, m.o.CID, spec, &oci.ExecOpts{IO: rio.IO, PidFile: m.o.ContainerPidFile,
		ConsoleSocket: sock, ExtraFiles: rio.extra})
	return err
}

// runtimeError turns a runtime failure into the message podman shows:
// the runtime's own error from the --log file podman asked for, else
// the binding's.
func runtimeError(o *Options, err error) error {
	if msg := lastRuntimeLogError(o.RuntimeArgs); msg != "" {
		return errors.New(msg)
	}
	return err
}

// lastRuntimeLogError reads the last "error" entry of the runtime's JSON
// log named by a --log runtime argument.
func lastRuntimeLogError(args []string) string {
	path := ""
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--log="); ok {
			path = v
		} else if a == "--log" && i+1 < len(args) {
			path = args[i+1]
		}
	}
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	msg := ""
	for _, line := range strings.Split(string(data), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Level == "error" && e.Msg != "" {
			msg = e.Msg
		}
	}
	return msg
}

// waitPid waits for the reaper to report pid's exit.
func waitPid(ctx context.Context, sub *reaper.Subscription, pid int) int {
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			return -1
		}
		if e.Pid == pid {
			return e.Status
		}
	}
}

// serve pumps output until wait returns the exit status, then drains.
func (m *monitor) serve(wait func() int) int {
	var wg sync.WaitGroup
	for _, out := range m.outs {
		wg.Add(1)
		go func(out output) {
			defer wg.Done()
			m.pump(out)
		}(out)
	}
	status := wait()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainWait):
		for _, out := range m.outs {
			if out.f != nil {
				out.f.SetReadDeadline(time.Now())
			} else if c, ok := out.r.(io.Closer); ok {
				c.Close()
			}
		}
		<-done
	}
	return status
}

// pump copies one output to the sinks and attached clients until EOF.
func (m *monitor) pump(out output) {
	buf := make([]byte, bufSize)
	prefix := byte(attachStdout)
	if out.stream == crilog.Stderr {
		prefix = attachStderr
	}
	for {
		n, err := out.r.Read(buf)
		if n > 0 {
			now := time.Now()
			m.sinkMu.Lock()
			for _, s := range m.sinks {
				s.write(out.stream, now, buf[:n])
			}
			m.sinkMu.Unlock()
			if m.att != nil {
				m.att.send(prefix, buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// report writes one message on the sync pipe (and keeps it open: exec
// sends the exit status later).
func (m *monitor) report(data int, msg string) {
	if m.sync != nil {
		writeSync(m.sync, data, msg)
	}
}

// writeSync writes conmon's sync message: {"data": N} or with "message".
func writeSync(f *os.File, data int, msg string) {
	v := struct {
		Data    int    `json:"data"`
		Message string `json:"message,omitempty"`
	}{data, msg}
	b, _ := json.Marshal(v)
	f.Write(append(b, '\n'))
}

// finish closes the streams, writes the exit files, tells an exec's
// podman the status, and runs the exit command; it returns the monitor's
// own exit code (the process's status, as conmon does).
func (m *monitor) finish(status int, msg string) int {
	if m.att != nil {
		m.att.close()
	}
	if m.ctl != nil {
		m.ctl.close()
	}
	m.sinkMu.Lock()
	closeSinks(m.sinks)
	m.sinks = nil
	m.sinkMu.Unlock()
	for _, out := range m.outs {
		if c, ok := out.r.(io.Closer); ok {
			c.Close()
		}
	}
	if m.timedOut.Load() {
		status, msg = -1, "command timed out"
	}
	if err := writeExitFiles(m.o, status); err != nil {
		m.log.WithError(err).Error("write exit file")
	}
	m.log.WithField("status", status).Info("process exited")
	if m.o.Exec {
		m.report(status, msg)
	}
	if m.sync != nil {
		m.sync.Close()
	}
	runExitCommand(m.o, m.log, m.rm.Start)
	return status & 0xff
}

// writeExitFiles writes the status in plain decimal to
// <persist-dir>/exit (podman 5) and <exit-dir>/<cid>, each atomically.
func writeExitFiles(o *Options, status int) error {
	b := []byte(strconv.Itoa(status))
	var errs []error
	if o.PersistDir != "" {
		errs = append(errs, atomicfile.WriteFile(filepath.Join(o.PersistDir, "exit"), b, 0o644))
	}
	if o.ExitDir != "" {
		errs = append(errs, atomicfile.WriteFile(filepath.Join(o.ExitDir, o.CID), b, 0o644))
	}
	return errors.Join(errs...)
}

// writeOOMFiles writes the empty files <bundle>/oom and
// <persist-dir>/oom (those of the options set) that tell podman the
// container had an OOM kill.
func writeOOMFiles(o *Options) error {
	var errs []error
	for _, dir := range []string{o.Bundle, o.PersistDir} {
		if dir != "" {
			errs = append(errs, atomicfile.WriteFile(filepath.Join(dir, "oom"), nil, 0o644))
		}
	}
	return errors.Join(errs...)
}

// runExitCommand runs --exit-command with its arguments after
// --exit-delay and waits for it, started by start (the process's reaper
// owns wait4).
func runExitCommand(o *Options, log *logrus.Entry, start func(*exec.Cmd) (func() (int, error), error)) {
	if o.ExitCommand == "" {
		return
	}
	if o.ExitDelay > 0 {
		time.Sleep(time.Duration(o.ExitDelay) * time.Second)
	}
	cmd := exec.Command(o.ExitCommand, o.ExitCommandArgs...)
	cmd.Args[0] = o.ExitCommand
	wait, err := start(cmd)
	if err != nil {
		log.WithError(err).Error("start the exit command")
		return
	}
	if st, err := wait(); err != nil || st != 0 {
		log.WithError(err).WithField("status", st).Warn("exit command failed")
	}
}
