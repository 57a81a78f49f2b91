// Package oci is a typed binding to an OCI runtime command line (runc or
// crun): it builds the command line, runs it through a ProcessMonitor, and
// parses what the runtime prints (state JSON, pid files, --log error lines).
//
// The package owns only "run the OCI runtime CLI and parse its output". It
// knows nothing of shims, reapers, I/O forwarding or container policy; a
// caller that reaps children itself passes its reaper as the
// ProcessMonitor.
//
// Every call runs
//
//	<Command> [--root Root] --log <tmpfile> --log-format json [Args...] <subcommand> ...
//
// with a fresh log file in LogDir that is removed afterwards. When the
// runtime exits non-zero, the error is a *RuntimeError carrying the
// runtime's own message, which unwraps to ErrNotFound, ErrAlreadyExists or
// ErrNotRunning when the message says so.
package oci

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
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultCommand is the runtime binary used when Runtime.Command is "".
const DefaultCommand = "runc"

// DefaultTimeout is the per-call deadline used when Runtime.Timeout is 0
// and the caller's context has no deadline.
const DefaultTimeout = 60 * time.Second

// killWaitDelay bounds how long cmd.Wait (DirectMonitor) waits after the
// runtime was killed because the context ended.
const killWaitDelay = 5 * time.Second

// Runtime runs one OCI runtime binary. Its zero value runs "runc" with the
// runtime's default root. A Runtime is safe for concurrent use as long as
// its fields are not modified.
type Runtime struct {
	// Command is the binary name (looked up in $PATH) or path. "" means
	// DefaultCommand ("runc").
	Command string
	// Root is passed as --root (the runtime's state directory). "" means
	// the runtime's default (/run/runc, /run/crun for root).
	Root string
	// Args are extra global arguments placed after the --log flags and
	// before the subcommand, e.g. "--systemd-cgroup" or crun's
	// "--cgroup-manager=disabled".
	Args []string
	// Monitor starts and waits for the runtime process. nil means
	// DirectMonitor.
	Monitor ProcessMonitor
	// Timeout is the deadline of each call whose context has no deadline.
	// 0 means DefaultTimeout; negative means no deadline. When it expires
	// (or the context ends) the runtime is killed with SIGKILL together
	// with its process group: each call runs in a group of its own, so a
	// hook or a half-made container process still in it dies too. The
	// error wraps context.DeadlineExceeded (or the context's error).
	Timeout time.Duration
	// LogDir is where the per-call --log files (and Exec's temporary
	// process and pid files) are created. "" means os.TempDir().
	LogDir string
	// Launcher, when not empty, runs the create and exec calls (the ones
	// whose children become the container's processes) as
	// Launcher[0] Launcher[1:]... <runtime path> <runtime args>: a program
	// that adjusts its own process (its OOM score, say) and then executes
	// the runtime in place, keeping its pid. Empty runs the runtime
	// directly.
	Launcher []string
}

// Status is the status of a container as reported by the runtime.
type Status string

// Container statuses defined by the OCI runtime specification.
const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// State is the state of one container as printed by `state` and `list`.
// Fields the runtime does not print are left zero (crun's list prints no
// rootfs; runc's list prints no annotations).
type State struct {
	// OCIVersion is the runtime-spec version the runtime implements.
	OCIVersion string `json:"ociVersion,omitempty"`
	// ID is the container id.
	ID string `json:"id"`
	// Pid is the pid of the container's init as seen from the host; runc
	// 1.1 and crun 1.8 print 0 once the container has stopped.
	Pid int `json:"pid"`
	// Status is created, running, paused or stopped (or creating).
	Status Status `json:"status"`
	// Bundle is the absolute bundle path.
	Bundle string `json:"bundle"`
	// Rootfs is the root filesystem path (crun prints it as in config.json,
	// possibly relative to Bundle).
	Rootfs string `json:"rootfs,omitempty"`
	// Created is the creation time.
	Created time.Time `json:"created"`
	// Annotations are the config's annotations, if any.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Owner is the user owning the container, if the runtime prints it.
	Owner string `json:"owner,omitempty"`
}

// name is the configured runtime binary name or path.
func (r *Runtime) name() string {
	if r.Command == "" {
		return DefaultCommand
	}
	return r.Command
}

// displayName is the base name of the runtime binary, used in errors.
func (r *Runtime) displayName() string {
	return filepath.Base(r.name())
}

// monitor returns the configured ProcessMonitor or DirectMonitor.
func (r *Runtime) monitor() ProcessMonitor {
	if r.Monitor == nil {
		return DirectMonitor{}
	}
	return r.Monitor
}

// logDir returns the directory for per-call temporary files.
func (r *Runtime) logDir() string {
	if r.LogDir == "" {
		return os.TempDir()
	}
	return r.LogDir
}

// callContext derives the context of one call: it applies the default
// timeout when ctx has none and is always cancelled when the call returns.
func (r *Runtime) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}

// command builds the exec.Cmd of one runtime call. It is the only place
// where a runtime command line is assembled:
//
//	<Command> [--root Root] --log logPath --log-format json [Args...] args...
//
// It fails with an error wrapping ErrBinaryNotFound if Command cannot be
// found. The runtime leads a process group of its own; when ctx ends, that
// group is killed (SIGKILL), so a hung hook or a half-made container
// process goes with it (runc and crun give the container's processes a
// session of their own, so a finished create's container is not in it).
// No parent-death signal is set, because for create and exec the
// runtime's children become the container's processes.
func (r *Runtime) command(ctx context.Context, logPath string, args ...string) (*exec.Cmd, error) {
	name := r.name()
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %q (%v): install it (e.g. apt-get install runc or crun) or pass --runtime with the path of an OCI runtime", ErrBinaryNotFound, name, err)
	}
	argv := make([]string, 0, 4+len(r.Args)+len(args))
	if r.Root != "" {
		argv = append(argv, "--root", r.Root)
	}
	argv = append(argv, "--log", logPath, "--log-format", "json")
	argv = append(argv, r.Args...)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, path, argv...)
	cmd.Args[0] = name
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process) }
	cmd.WaitDelay = killWaitDelay
	return cmd, nil
}

// launch makes cmd run through r.Launcher, which executes the runtime.
func (r *Runtime) launch(cmd *exec.Cmd) {
	argv := append(append([]string{}, r.Launcher...), cmd.Path)
	cmd.Args = append(argv, cmd.Args[1:]...)
	cmd.Path = r.Launcher[0]
}

// killGroup kills the runtime's process group (the runtime was started
// as its leader) and the runtime itself. A runtime already reaped is left
// alone: its group id may since have been reused.
func killGroup(p *os.Process) error {
	if err := p.Signal(syscall.Signal(0)); err != nil {
		return err
	}
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	return p.Kill()
}

// call describes one runtime invocation for run.
type call struct {
	op   string   // subcommand, for errors
	id   string   // container id, for errors; may be ""
	args []string // subcommand and its arguments
	// io, when non-nil, is the runtime's stdio (create, exec): it is passed
	// as is and nothing is captured. When nil, stderr (and stdout if
	// wantStdout) are captured in unlinked temporary files.
	io         *IO
	extraFiles []*os.File
	wantStdout bool
}

// run executes c and returns the captured stdout (if c.wantStdout). On a
// non-zero exit it returns a *RuntimeError; on context expiry an error
// wrapping ctx.Err().
func (r *Runtime) run(ctx context.Context, c call) ([]byte, error) {
	prefix := opPrefix(r.displayName(), c.op, c.id)
	ctx, cancel := r.callContext(ctx)
	defer cancel()

	logFile, err := os.CreateTemp(r.logDir(), "oci-log-*.json")
	if err != nil {
		return nil, fmt.Errorf("%s: create log file: %w", prefix, err)
	}
	logPath := logFile.Name()
	logFile.Close()
	defer os.Remove(logPath)

	cmd, err := r.command(ctx, logPath, c.args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	if len(r.Launcher) > 0 && (c.op == "create" || c.op == "exec" || c.op == "restore") {
		r.launch(cmd)
	}

	var stdout, stderr *os.File
	if c.io != nil {
		// Assign only non-nil files: a nil *os.File in an io.Reader
		// interface is not "no file" to os/exec.
		if c.io.Stdin != nil {
			cmd.Stdin = c.io.Stdin
		}
		if c.io.Stdout != nil {
			cmd.Stdout = c.io.Stdout
		}
		if c.io.Stderr != nil {
			cmd.Stderr = c.io.Stderr
		}
	} else {
		// Files, not pipes or buffers: nothing needs cmd.Wait to drain
		// them, and a hook's leftover child holding them cannot hang us.
		if stderr, err = unlinkedTemp(r.logDir(), "oci-stderr-*"); err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		defer stderr.Close()
		cmd.Stderr = stderr
		if c.wantStdout {
			if stdout, err = unlinkedTemp(r.logDir(), "oci-stdout-*"); err != nil {
				return nil, fmt.Errorf("%s: %w", prefix, err)
			}
			defer stdout.Close()
			cmd.Stdout = stdout
		}
	}
	cmd.ExtraFiles = c.extraFiles

	wait, err := r.monitor().Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: start: %w", prefix, err)
	}
	status, err := wait()
	if ctxErr := ctx.Err(); ctxErr != nil && (err != nil || status != 0) {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: the runtime did not finish in time and was killed with its process group: %w", prefix, ctxErr)
		}
		return nil, fmt.Errorf("%s: runtime killed: %w", prefix, ctxErr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: wait: %w", prefix, err)
	}
	if status != 0 {
		rerr := &RuntimeError{Command: r.displayName(), Op: c.op, ID: c.id, Status: status}
		if log, err := readLimited(logPath); err == nil {
			rerr.Msg = lastLogError(log)
		}
		if rerr.Msg == "" && stderr != nil {
			if b, err := readFileFromStart(stderr); err == nil {
				rerr.Msg = oneLine(string(b))
			}
		}
		return nil, rerr
	}
	if stdout == nil {
		return nil, nil
	}
	out, err := readFileFromStart(stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: read output: %w", prefix, err)
	}
	return out, nil
}

// maxRead bounds how much of the runtime's log or output is read.
const maxRead = 16 << 20

// unlinkedTemp creates a temporary file in dir and unlinks it, so it
// disappears when closed.
func unlinkedTemp(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readFileFromStart reads f from offset 0, up to maxRead bytes.
func readFileFromStart(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, maxRead))
}

// readLimited reads the file at path, up to maxRead bytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxRead))
}

// validateID checks id against the rule runc enforces; see ErrInvalidID.
func validateID(id string) error {
	if id == "" || id == "." || id == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '+', c == '-', c == '.':
		default:
			return fmt.Errorf("%w: %q: only letters, digits and _+-. are allowed", ErrInvalidID, id)
		}
	}
	return nil
}

// idError returns the error for an invalid id, prefixed like other errors.
func (r *Runtime) idError(op, id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("%s: %w", opPrefix(r.displayName(), op, id), err)
	}
	return nil
}

// Create creates the container id from the bundle directory (`create
// --bundle`), leaving its init waiting for Start. opts may be nil. The
// container's init inherits opts.IO and opts.ExtraFiles.
//
// It returns an error wrapping ErrInvalidID for a bad id, an error wrapping
// the os.Stat error if bundle is not a directory, a *RuntimeError (which
// unwraps to ErrAlreadyExists if the id is taken) if the runtime fails, or
// an error wrapping ErrBinaryNotFound. If the call times out the runtime is
// killed and may leave a half-created container: Delete it with Force.
func (r *Runtime) Create(ctx context.Context, id, bundle string, opts *CreateOpts) error {
	if err := r.idError("create", id); err != nil {
		return err
	}
	if opts == nil {
		opts = &CreateOpts{}
	}
	prefix := opPrefix(r.displayName(), "create", id)
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return fmt.Errorf("%s: bundle: %w", prefix, err)
	}
	// Checked here because crun reports a missing bundle only on stderr,
	// which belongs to the container and is not captured.
	if fi, err := os.Stat(abs); err != nil {
		return fmt.Errorf("%s: bundle: %w", prefix, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: bundle %s: not a directory", prefix, abs)
	}
	oargs, err := opts.args()
	if err != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	args := append([]string{"create", "--bundle", abs}, oargs...)
	_, err = r.run(ctx, call{
		op: "create", id: id, args: append(args, id),
		io: &opts.IO, extraFiles: opts.ExtraFiles,
	})
	return err
}

// Start starts the user process of the created container id (`start`).
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound; ErrNotRunning if the
// container has already stopped), ErrBinaryNotFound.
func (r *Runtime) Start(ctx context.Context, id string) error {
	return r.simple(ctx, "start", id)
}

// Pause freezes all processes of container id (`pause`).
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound, ErrNotRunning),
// ErrBinaryNotFound.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	return r.simple(ctx, "pause", id)
}

// Resume thaws a paused container id (`resume`). Resuming a container that
// is not paused is an error with runc ("container not paused", no
// sentinel) and a no-op with crun 1.8.
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound, ErrNotRunning),
// ErrBinaryNotFound.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	return r.simple(ctx, "resume", id)
}

// simple runs "<op> <id>".
func (r *Runtime) simple(ctx context.Context, op, id string) error {
	if err := r.idError(op, id); err != nil {
		return err
	}
	_, err := r.run(ctx, call{op: op, id: id, args: []string{op, id}})
	return err
}

// State returns the state of container id (`state`).
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound if the id does not
// exist), ErrBinaryNotFound, or a JSON decoding error.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	if err := r.idError("state", id); err != nil {
		return nil, err
	}
	out, err := r.run(ctx, call{op: "state", id: id, args: []string{"state", id}, wantStdout: true})
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("%s: parse output: %w", opPrefix(r.displayName(), "state", id), err)
	}
	return &s, nil
}

// Ps returns the pids of the processes of container id (`ps --format
// json`), in the runtime's order. An empty list is non-nil.
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound), ErrBinaryNotFound,
// or a JSON decoding error.
func (r *Runtime) Ps(ctx context.Context, id string) ([]int, error) {
	if err := r.idError("ps", id); err != nil {
		return nil, err
	}
	out, err := r.run(ctx, call{op: "ps", id: id, args: []string{"ps", "--format", "json", id}, wantStdout: true})
	if err != nil {
		return nil, err
	}
	pids := []int{}
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("%s: parse output: %w", opPrefix(r.displayName(), "ps", id), err)
	}
	if pids == nil {
		pids = []int{}
	}
	return pids, nil
}

// List returns the state of every container in Root (`list --format
// json`). An empty root (runc prints "null") gives an empty, non-nil slice.
// Errors: *RuntimeError, ErrBinaryNotFound, or a JSON decoding error.
func (r *Runtime) List(ctx context.Context) ([]State, error) {
	out, err := r.run(ctx, call{op: "list", args: []string{"list", "--format", "json"}, wantStdout: true})
	if err != nil {
		return nil, err
	}
	var states []State
	if err := json.Unmarshal(out, &states); err != nil {
		return nil, fmt.Errorf("%s: parse output: %w", opPrefix(r.displayName(), "list", ""), err)
	}
	if states == nil {
		states = []State{}
	}
	return states, nil
}

// Kill sends sig to the init of container id, or to all its processes
// with opts.All (`kill [--all] <id> <signal number>`). opts may be nil.
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound; ErrNotRunning if the
// container has stopped — note that runc 1.1 and crun 1.8 both accept
// kill --all of a stopped container), ErrBinaryNotFound.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, opts *KillOpts) error {
	if err := r.idError("kill", id); err != nil {
		return err
	}
	if opts == nil {
		opts = &KillOpts{}
	}
	args := append([]string{"kill"}, opts.args()...)
	args = append(args, id, strconv.Itoa(int(sig)))
	_, err := r.run(ctx, call{op: "kill", id: id, args: args})
	return err
}

// Delete removes container id and its state (`delete [--force]`). opts
// may be nil. Without Force, the container must be created or stopped.
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound without Force),
// ErrBinaryNotFound.
func (r *Runtime) Delete(ctx context.Context, id string, opts *DeleteOpts) error {
	if err := r.idError("delete", id); err != nil {
		return err
	}
	if opts == nil {
		opts = &DeleteOpts{}
	}
	args := append([]string{"delete"}, opts.args()...)
	_, err := r.run(ctx, call{op: "delete", id: id, args: append(args, id)})
	return err
}

// Exec starts an additional process described by spec in container id
// and returns its host pid. opts may be nil.
//
// Exec always runs the runtime with --detach: the runtime exits as soon as
// the process has started, and the process is re-parented to the nearest
// child subreaper (the shim), which must reap it and collect its exit
// status. Its stdio is opts.IO. The spec is written as JSON to
// opts.ProcessFile or a temporary file, and the pid is read from
// opts.PidFile or a temporary file.
//
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound, ErrNotRunning),
// ErrBinaryNotFound, or errors writing the spec or reading the pid file.
func (r *Runtime) Exec(ctx context.Context, id string, spec specs.Process, opts *ExecOpts) (int, error) {
	if err := r.idError("exec", id); err != nil {
		return 0, err
	}
	if opts == nil {
		opts = &ExecOpts{}
	}
	prefix := opPrefix(r.displayName(), "exec", id)

	data, err := json.Marshal(spec)
	if err != nil {
		return 0, fmt.Errorf("%s: encode process spec: %w", prefix, err)
	}
	processFile := opts.ProcessFile
	if processFile == "" {
		f, err := os.CreateTemp(r.logDir(), "oci-process-*.json")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", prefix, err)
		}
		processFile = f.Name()
		f.Close()
		defer os.Remove(processFile)
	}
	if err := os.WriteFile(processFile, data, 0o600); err != nil {
		return 0, fmt.Errorf("%s: write process spec: %w", prefix, err)
	}

	pidFile := opts.PidFile
	if pidFile == "" {
		// A name for the runtime to create; it writes pid files via a
		// temporary file and rename, so the name must not exist yet.
		dir, err := os.MkdirTemp(r.logDir(), "oci-exec-*")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", prefix, err)
		}
		defer os.RemoveAll(dir)
		pidFile = filepath.Join(dir, "pid")
	}

	oargs, err := opts.args(processFile, pidFile)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", prefix, err)
	}
	args := append([]string{"exec"}, oargs...)
	if _, err := r.run(ctx, call{
		op: "exec", id: id, args: append(args, id),
		io: &opts.IO, extraFiles: opts.ExtraFiles,
	}); err != nil {
		return 0, err
	}
	pid, err := ReadPidFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", prefix, err)
	}
	return pid, nil
}

// Version returns the runtime's version: the word after "version" on the
// first line of `<Command> --version` (e.g. "1.1.5+ds1" for runc, "1.8.1"
// for crun), or the whole first line if it has no such word.
// Errors: *RuntimeError, ErrBinaryNotFound, or an error for empty output.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	out, err := r.run(ctx, call{op: "--version", args: []string{"--version"}, wantStdout: true})
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	fields := strings.Fields(first)
	for i, f := range fields {
		if f == "version" && i+1 < len(fields) {
			return fields[i+1], nil
		}
	}
	if first == "" {
		return "", fmt.Errorf("%s: empty output", opPrefix(r.displayName(), "--version", ""))
	}
	return strings.TrimSpace(first), nil
}

// pidFileRetries and pidFileInterval bound how long ReadPidFile waits for
// an empty pid file to be filled in.
const (
	pidFileRetries  = 50
	pidFileInterval = 20 * time.Millisecond
)

// ReadPidFile reads a pid written by the runtime (--pid-file). If the file
// is empty it retries for about a second, since the runtime may still be
// writing it. It returns an error wrapping fs.ErrNotExist if the file does
// not exist, and an error if it stays empty or does not hold a positive
// integer.
func ReadPidFile(path string) (int, error) {
	for i := 0; ; i++ {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("read pid file: %w", err)
		}
		s := strings.TrimSpace(string(data))
		if s == "" {
			if i < pidFileRetries {
				time.Sleep(pidFileInterval)
				continue
			}
			return 0, fmt.Errorf("read pid file %s: %w", path, errEmptyPidFile)
		}
		pid, err := strconv.Atoi(s)
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("read pid file %s: invalid pid %q", path, s)
		}
		return pid, nil
	}
}

// errEmptyPidFile is wrapped when a pid file stays empty.
var errEmptyPidFile = errors.New("file is empty")
