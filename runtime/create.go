package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/gotune"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

// readyTimeout bounds how long Create waits for a shim to report, if ctx
// has no sooner deadline.
const readyTimeout = 2 * time.Minute

// CreateOpts are the options of Create; the zero value runs without a
// terminal or stdin and never rotates the log.
type CreateOpts struct {
	// Terminal gives the container a pty; the bundle's process.terminal
	// must say so too.
	Terminal bool
	// Stdin keeps a pipe to the container's stdin open in its shim.
	Stdin bool
	// LogMaxSize rotates output.log past this many bytes; 0 never rotates.
	LogMaxSize int64
	// LogMaxFiles is how many rotated logs are kept; 0 means 1.
	LogMaxFiles int
	// WriteBundle, when set, makes the bundle inside the container's own
	// folder, so that it is removed with the container: Create calls it,
	// once the folder is made and locked, with the path of the bundle to
	// write (ROOT/ID/bundle; it does not exist yet), and
	// Create's bundleDir argument must be "". An error from it fails the
	// create and removes the folder. The ID and the runtime are checked
	// before it is called.
	WriteBundle func(dir string) error
	// AutoRemove makes the container's shim remove it once init has
	// exited (docker's --rm), whether or not a manager runs then: after
	// the exit record is durable and journaled and the waiters of that
	// moment (Wait, a foreground stream) have their answer, it deletes the
	// runtime's container and the folder (a written bundle with it),
	// journals deleted and exits. Wait then returns the true status to a
	// caller already waiting; afterwards the container is not found. A
	// manager that finds such a container stopped with its shim gone (it
	// died in between) finishes the removal when it loads it.
	AutoRemove bool
}

// Create makes a container from the bundle folder and leaves it in the
// created state, with a shim serving it. On error nothing is left behind:
// no folder, no shim, no runtime container. The error is one line: an
// invalid ID or bundle gives ErrInvalid, a taken ID ErrExists, a missing
// runtime ErrRuntimeNotFound, and the OCI runtime's own message otherwise.
func (m *Manager) Create(ctx context.Context, id, bundleDir string, opts CreateOpts) (*Container, error) {
	if opts.WriteBundle != nil {
		return m.createWithBundle(ctx, id, bundleDir, opts)
	}
	rec, command, err := m.newRecord(id, bundleDir, opts)
	if err != nil {
		return nil, err
	}
	return m.create(ctx, rec, command)
}

// create makes the folder of rec, starts its shim and loads the container.
func (m *Manager) create(ctx context.Context, rec *store.Record, command string) (*Container, error) {
	id := rec.ID
	st, lock, err := m.claim(ctx, id)
	if err != nil {
		return nil, err
	}
	crashPoint("after-mkdir")
	err = m.startShim(ctx, st, rec, lock)
	if err != nil {
		m.abandon(context.WithoutCancel(ctx), st, rec)
	}
	lock.Close()
	if err != nil {
		return nil, explainCommand(err, command)
	}
	crashPoint("after-runtime-create")
	return m.Load(ctx, id)
}

// createWithBundle is Create for opts.WriteBundle: the bundle is written
// in the new folder before the record is made from it.
func (m *Manager) createWithBundle(ctx context.Context, id, bundleDir string, opts CreateOpts) (*Container, error) {
	if bundleDir != "" {
		return nil, fmt.Errorf("%w: a bundle folder (%s) and a bundle to write were both given: give one", ErrInvalid, bundleDir)
	}
	if err := ids.ValidID(id); err != nil {
		return nil, err
	}
	if _, err := m.lookRuntime(); err != nil {
		return nil, err
	}
	st, lock, err := m.claim(ctx, id)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	rec, command, err := m.writeBundle(id, st.BundleDir(), opts)
	if err != nil {
		st.Remove()
		return nil, err
	}
	if err := m.startShim(ctx, st, rec, lock); err != nil {
		m.abandon(context.WithoutCancel(ctx), st, rec)
		return nil, explainCommand(err, command)
	}
	lock.Close()
	return m.Load(ctx, id)
}

// claim makes container id's folder, refusing a taken ID, and takes its
// lock. The lock is held until the shim has reported ready (the shim
// inherits it), so another manager never takes a folder being created for
// a half-made one.
func (m *Manager) claim(ctx context.Context, id string) (*store.Folder, *os.File, error) {
	if err := m.makeRoot(); err != nil {
		return nil, nil, err
	}
	st := m.folder(id)
	if err := st.Make(); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, withRemedy(RemedyOtherID, id, fmt.Errorf("container %s: %w", id, ErrExists))
		}
		return nil, nil, fmt.Errorf("create state folder: %w", err)
	}
	lock, err := st.Lock(ctx, false)
	if err != nil {
		st.Remove()
		return nil, nil, fmt.Errorf("create %s: %w", id, err)
	}
	return st, lock, nil
}

// writeBundle writes the bundle at dir through opts.WriteBundle and makes
// the record from it.
func (m *Manager) writeBundle(id, dir string, opts CreateOpts) (*store.Record, string, error) {
	if err := opts.WriteBundle(dir); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return m.newRecord(id, dir, opts)
}

// newRecord checks everything it can before anything is made. It also
// returns the command the bundle runs (process.args[0]).
func (m *Manager) newRecord(id, bundleDir string, opts CreateOpts) (*store.Record, string, error) {
	if err := ids.ValidID(id); err != nil {
		return nil, "", err
	}
	if bundleDir == "" {
		bundleDir = "."
	}
	abs, err := filepath.Abs(bundleDir)
	if err != nil {
		return nil, "", err
	}
	spec, err := bundle.Validate(abs)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if opts.Terminal != spec.Process.Terminal {
		return nil, "", &RemedyError{Remedy: RemedyTerminalBundle, ID: id, Terminal: opts.Terminal,
			Err: fmt.Errorf("%w: bundle %s has process.terminal=%v but the create asks for terminal=%v: make them agree",
				ErrInvalid, abs, spec.Process.Terminal, opts.Terminal)}
	}
	if opts.LogMaxSize < 0 || opts.LogMaxFiles < 0 {
		return nil, "", fmt.Errorf("%w: log size and file count must not be negative", ErrInvalid)
	}
	rt, err := m.lookRuntime()
	if err != nil {
		return nil, "", err
	}
	boot, err := proc.BootID()
	if err != nil {
		// Without it a reboot cannot be told from a dead shim later.
		m.log.WithError(err).Warn("no boot id: after a reboot this container's records cannot be recognised as stale")
	}
	return &store.Record{Version: store.Version, ID: id, Bundle: abs, Runtime: rt,
		RuntimeRoot: m.runtimeRoot(rt), RuntimeArgs: m.opts.RuntimeArgs,
		Terminal: opts.Terminal, Stdin: opts.Stdin, LogMaxSize: opts.LogMaxSize,
		LogMaxFiles: opts.LogMaxFiles, CreatedAt: time.Now().UTC(), BootID: boot,
		RuntimeTimeoutMS: m.opts.RuntimeTimeout.Milliseconds(), AutoRemove: opts.AutoRemove}, spec.Process.Args[0], nil
}

// startShim writes the record, starts the shim through its start helper
// (which exits at once, so the shim is orphaned and belongs to no manager)
// and waits for the shim's ready message. lock is the folder's lock, handed
// down to the shim.
func (m *Manager) startShim(ctx context.Context, st *store.Folder, rec *store.Record, lock *os.File) error {
	if err := st.WriteRecord(rec); err != nil {
		return err
	}
	crashPoint("after-record")
	r, err := m.spawnShim(ctx, shimapi.ActionStart, rec.ID, lock)
	if err != nil {
		return err
	}
	defer r.Close()
	crashPoint("after-shim-spawn")
	msg, err := readReady(ctx, r, st)
	if err == nil && rec.AutoRemove && !msg.AutoRemove {
		// A shim that predates auto-remove ignores the field: the
		// container would stay after its exit.
		return fmt.Errorf("%w: the shim does not support auto-remove (it predates it): use the tether-shim of this tether", ErrInvalid)
	}
	return err
}

// spawnShim runs "tether-shim ACTION --root R --id ID --lock-fd 4": the
// start helper, which starts the shim in a new session and exits at once.
// The shim gets the write end of a pipe on fd 3 for its ready message (the
// read end is returned; the caller closes it) and the folder's lock on fd
// 4, which it keeps until it is ready. action is shimapi.ActionStart or
// shimapi.ActionAdopt.
func (m *Manager) spawnShim(ctx context.Context, action, id string, lock *os.File) (*os.File, error) {
	bin, err := m.shimBinary()
	if err != nil {
		return nil, err
	}
	if m.opts.ShortLived {
		return m.spawnDirect(bin, action, id, lock)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := []string{action, "--root", m.root, "--id", id, "--lock-fd", "4"}
	if m.opts.ShimDebug {
		args = append(args, "--debug")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.ExtraFiles = []*os.File{w, lock}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start shim: %v: %s", err, stderr.String())
	}
	return r, nil
}

// spawnDirect is spawnShim without the start helper (Opts.ShortLived): it
// runs the shim proper itself, set up as the helper would (new session,
// folder "/", stdout and stderr on the shim log, the tuned environment,
// shimapi.DirectEnv so that it closes whatever else it inherited), and
// reaps it if it dies while this process lives. Not tied to ctx: the shim
// outlives the call.
func (m *Manager) spawnDirect(bin, action, id string, lock *os.File) (*os.File, error) {
	serve := shimapi.ServeCreate
	if action == shimapi.ActionAdopt {
		serve = shimapi.ServeAdopt
	}
	logf, err := os.OpenFile(m.folder(id).ShimLogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start shim: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	args := []string{serve, "--root", m.root, "--id", id, "--lock-fd", "4"}
	if m.opts.ShimDebug {
		args = append(args, "--debug")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w, lock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	cmd.Env = append(gotune.Env(os.Environ()), shimapi.DirectEnv+"=1")
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("start shim: %w", err)
	}
	go cmd.Wait() // no zombie if it dies while we live; no pipes to copy
	return r, nil
}

// readReady waits for the shim's one-line report (shimapi.Ready). A read
// that fails says why: the deadline or ctx, or the pipe's own error.
func readReady(ctx context.Context, r *os.File, st *store.Folder) (shimapi.Ready, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		return shimapi.Ready{}, fmt.Errorf("waiting for the shim: %w", err)
	}
	var msg shimapi.Ready
	if len(line) == 0 || json.Unmarshal(line, &msg) != nil {
		return msg, fmt.Errorf("the shim exited before it was ready: see %s", st.ShimLogPath())
	}
	return msg, msg.Err()
}

// explainCommand adds the command and the fix to an error saying that the
// process's executable is missing or cannot be run (crun's messages do not
// name it).
func explainCommand(err error, command string) error {
	switch {
	case errors.Is(err, ErrCommandNotFound):
		return fmt.Errorf("%w: %q is not in the container: check its name, or give its full path", err, command)
	case errors.Is(err, ErrCommandNotExecutable):
		return fmt.Errorf("%w: %q cannot be run: it must be a file with execute permission", err, command)
	}
	return err
}

// abandon undoes a failed create: the shim (if it is still there) is
// killed by its recorded identity, the runtime's container removed, and the
// folder deleted.
func (m *Manager) abandon(ctx context.Context, st *store.Folder, rec *store.Record) {
	c := &Container{m: m, id: rec.ID, st: st, rec: rec}
	if id, err := c.checkShim(); err == nil {
		c.signalShim(id, syscall.SIGKILL)
		id.WaitExit(2 * time.Second)
	}
	c.cleanup(ctx)
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// crashPoint kills the process (SIGKILL) when TETHER_CRASH_POINT (a
// comma-separated list) names this point. It exists for the
// crash-recovery tests and does nothing otherwise.
// The manager's points, in the order Create passes them: "after-mkdir"
// (folder made and locked, no record), "after-record", "after-shim-spawn"
// (the start helper has exited; the shim is creating), "after-runtime-create"
// (the shim reported ready) and, in Start, "after-start". The shim inherits
// the variable and has its own: "shim-after-runtime-create" (no init.pid
// yet) and "shim-after-init-pid" (not yet ready).
func crashPoint(name string) {
	if slices.Contains(strings.Split(os.Getenv("TETHER_CRASH_POINT"), ","), name) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
