package oci

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CheckpointOpts are the options of Runtime.Checkpoint. ImagePath is
// required.
type CheckpointOpts struct {
	// ImagePath is the folder CRIU writes the images into (--image-path);
	// it is made (mode 0700) if missing.
	ImagePath string
	// WorkPath is where CRIU writes its log, dump.log (--work-path); ""
	// means ImagePath.
	WorkPath string
	// LeaveRunning keeps the container running after the dump
	// (--leave-running); otherwise the runtime kills it once dumped.
	LeaveRunning bool
	// TCPEstablished, ExtUnixSk, ShellJob and FileLocks allow what CRIU
	// refuses to dump by default: established TCP connections, external
	// unix sockets, a shell job (a terminal), file locks.
	TCPEstablished, ExtUnixSk, ShellJob, FileLocks bool
}

// args returns the subcommand flags for o (without the id).
func (o *CheckpointOpts) args() []string {
	out := []string{"--image-path", o.ImagePath, "--work-path", o.workPath()}
	if o.LeaveRunning {
		out = append(out, "--leave-running")
	}
	return append(out, criuFlags(o.TCPEstablished, o.ExtUnixSk, o.ShellJob, o.FileLocks)...)
}

func (o *CheckpointOpts) workPath() string {
	if o.WorkPath == "" {
		return o.ImagePath
	}
	return o.WorkPath
}

// RestoreOpts are the options of Runtime.Restore. ImagePath is required.
type RestoreOpts struct {
	// IO is the stdio of the runtime; the restored process's standard
	// pipes (as they were at the checkpoint) are replaced by these files
	// (runc and crun map the checkpoint's external pipes to the restore's
	// own stdio), so its output goes to whoever holds their other ends.
	IO
	// ImagePath holds the images of a checkpoint (--image-path).
	ImagePath string
	// WorkPath is where CRIU writes restore.log; "" means ImagePath.
	WorkPath string
	// PidFile, if set, is where the runtime writes the restored init's
	// host pid (--pid-file). Relative paths are made absolute.
	PidFile string
	// ConsoleSocket receives the pty master of a restored terminal.
	ConsoleSocket string
	// See CheckpointOpts.
	TCPEstablished, ExtUnixSk, ShellJob, FileLocks bool
	// NoSubreaper stops runc from making itself the child subreaper of
	// the restored processes (--no-subreaper): the caller, a subreaper
	// itself, must be their parent once the runtime exits.
	NoSubreaper bool
}

// args returns the subcommand flags for o (without --bundle and the id).
func (o *RestoreOpts) args() ([]string, error) {
	work := o.WorkPath
	if work == "" {
		work = o.ImagePath
	}
	out := []string{"--detach", "--image-path", o.ImagePath, "--work-path", work}
	if o.PidFile != "" {
		abs, err := filepath.Abs(o.PidFile)
		if err != nil {
			return nil, err
		}
		out = append(out, "--pid-file", abs)
	}
	if o.ConsoleSocket != "" {
		out = append(out, "--console-socket", o.ConsoleSocket)
	}
	if o.NoSubreaper {
		out = append(out, "--no-subreaper")
	}
	return append(out, criuFlags(o.TCPEstablished, o.ExtUnixSk, o.ShellJob, o.FileLocks)...), nil
}

func criuFlags(tcp, extUnix, shell, locks bool) []string {
	var out []string
	for _, f := range []struct {
		on   bool
		flag string
	}{{tcp, "--tcp-established"}, {extUnix, "--ext-unix-sk"}, {shell, "--shell-job"}, {locks, "--file-locks"}} {
		if f.on {
			out = append(out, f.flag)
		}
	}
	return out
}

// ErrCheckpointPath means ImagePath was not given or is not absolute.
var ErrCheckpointPath = errors.New("checkpoint image path must be an absolute folder")

// Checkpoint dumps the running container id with CRIU (`checkpoint`)
// into opts.ImagePath. Unless opts.LeaveRunning the container is killed
// once dumped (its init dies of SIGKILL).
//
// Errors: ErrInvalidID, ErrCheckpointPath, *RuntimeError (ErrNotFound,
// ErrNotRunning) whose message is followed by CRIU's own last errors from
// dump.log when there are some, ErrBinaryNotFound.
func (r *Runtime) Checkpoint(ctx context.Context, id string, opts *CheckpointOpts) error {
	if err := r.idError("checkpoint", id); err != nil {
		return err
	}
	if opts == nil || !filepath.IsAbs(opts.ImagePath) {
		return fmt.Errorf("%s: %w", opPrefix(r.displayName(), "checkpoint", id), ErrCheckpointPath)
	}
	if err := os.MkdirAll(opts.ImagePath, 0o700); err != nil {
		return fmt.Errorf("%s: %w", opPrefix(r.displayName(), "checkpoint", id), err)
	}
	args := append([]string{"checkpoint"}, opts.args()...)
	_, err := r.run(ctx, call{op: "checkpoint", id: id, args: append(args, id)})
	return withCRIULog(err, filepath.Join(opts.workPath(), "dump.log"))
}

// Restore makes container id from the checkpoint in opts.ImagePath and
// the bundle folder (`restore --detach`); the restored init runs at once
// (there is no created state) and, like an exec'd process, is reparented
// to the nearest child subreaper, which must reap it.
//
// Errors: ErrInvalidID, ErrCheckpointPath, an error wrapping the os.Stat
// error of a missing bundle or image folder, *RuntimeError
// (ErrAlreadyExists) followed by CRIU's last errors from restore.log,
// ErrBinaryNotFound.
func (r *Runtime) Restore(ctx context.Context, id, bundle string, opts *RestoreOpts) error {
	if err := r.idError("restore", id); err != nil {
		return err
	}
	prefix := opPrefix(r.displayName(), "restore", id)
	if opts == nil || !filepath.IsAbs(opts.ImagePath) {
		return fmt.Errorf("%s: %w", prefix, ErrCheckpointPath)
	}
	if _, err := os.Stat(opts.ImagePath); err != nil {
		return fmt.Errorf("%s: image: %w", prefix, err)
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return fmt.Errorf("%s: bundle: %w", prefix, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return fmt.Errorf("%s: bundle: %w", prefix, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: bundle %s: not a directory", prefix, abs)
	}
	oargs, err := opts.args()
	if err != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	args := append([]string{"restore", "--bundle", abs}, oargs...)
	_, err = r.run(ctx, call{op: "restore", id: id, args: append(args, id), io: &opts.IO})
	work := opts.WorkPath
	if work == "" {
		work = opts.ImagePath
	}
	return withCRIULog(err, filepath.Join(work, "restore.log"))
}

// criuLogLines is how many of CRIU's error lines an error carries.
const criuLogLines = 3

// withCRIULog adds CRIU's own last error lines from log to a runtime's
// failure: runc and crun only say that CRIU failed and where its log is.
// The error still unwraps to the runtime's.
func withCRIULog(err error, log string) error {
	if err == nil {
		return nil
	}
	lines := criuErrors(log)
	if len(lines) == 0 {
		return err
	}
	return fmt.Errorf("%w; CRIU (%s): %s", err, log, strings.Join(lines, "; "))
}

// criuErrors returns the last criuLogLines "Error (" lines of a CRIU log.
func criuErrors(log string) []string {
	f, err := os.Open(log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if i := strings.Index(l, "Error ("); i >= 0 {
			lines = append(lines, strings.TrimSpace(l[i:]))
			if len(lines) > criuLogLines {
				lines = lines[1:]
			}
		}
	}
	return lines
}
