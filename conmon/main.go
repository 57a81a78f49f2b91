// Package conmon is podman's monitor contract on Tether's shim core: the
// front end behind the tether-conmon binary. It speaks conmon's command
// line, pipes and files exactly (conmon's src/cli.c and conmon.c, podman's
// libpod/oci_conmon_*.go are the reference). A container's monitor is a
// shim.Shim in-process with its records in a store folder, as tether-shim
// is (container.go): create, reaping, output into podman's log drivers and
// attach clients, durable exit records, and adoption of an orphaned init
// are the core's. An exec session's monitor runs the runtime's exec with
// the OCI binding and the reaper, as conmon does (exec.go).
//
// One process per container (and one per exec session), as with conmon.
// What conmon lacks: when a container's monitor is killed, a watcher
// starts a new monitor that adopts the still-running init through the
// core, so podman still gets the true exit file, the exit command and the
// log (watch.go).
//
// The package creates containers only: podman itself runs the runtime's
// start, kill, pause and delete, with the runtime's default root and the
// --runtime-arg values it passed here, so this front end never uses
// Tether's own --root.
package conmon

import (
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

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shimapi"
	"golang.org/x/sys/unix"
)

// Version is the conmon version tether-conmon claims. podman 4.3 parses
// the first line of --version and silently picks another conmon when it
// is older than 2.0.1 (or unreadable); 2.1.6 is the conmon whose options
// this package implements.
const Version = "2.1.6"

// Main runs tether-conmon with args (without the program name) and
// returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	action, root, cid, args := cutServeArgs(args)
	o, err := Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "tether-conmon: %v (run with --version to check the binary; flags are conmon's)\n", err)
		return 1
	}
	if o.Encoded != "" {
		if o, err = decodeOptions(o); err != nil {
			fmt.Fprintf(stderr, "tether-conmon: %v\n", err)
			return 1
		}
	}
	if o.Version {
		fmt.Fprintf(stdout, "conmon version %s\ncommit: tether-conmon\n", Version)
		return 0
	}
	switch o.Role {
	case "":
		err = launch(o)
	case RoleDaemon:
		if o.Exec {
			return runMonitor(o)
		}
		if action != shimapi.ServeCreate {
			err = errors.New("a container's monitor is started as serve --root ROOT --id CID")
			break
		}
		return runContainer(o, root)
	case RoleAdopt:
		if action != shimapi.ServeAdopt {
			err = errors.New("an adopting monitor is started as serve-adopt --root ROOT --id CID")
			break
		}
		return runAdopt(root, cid, o.AdoptStatus)
	case RoleWatch:
		err = runWatch(o)
	default:
		err = fmt.Errorf("unknown --tether-role %q", o.Role)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tether-conmon: %v\n", err)
		return 1
	}
	return 0
}

// decodeOptions replaces o by the options encoded in it (the detached
// monitor's --tether-options), keeping its role.
func decodeOptions(o *Options) (*Options, error) {
	var d Options
	if err := json.Unmarshal([]byte(o.Encoded), &d); err != nil {
		return nil, fmt.Errorf("--tether-options: %w", err)
	}
	d.Role = o.Role
	return &d, nil
}

// validate checks what conmon's process_cli checks, with the fix named.
func validate(o *Options) error {
	switch {
	case o.CID == "":
		return errors.New("container ID not provided: pass --cid")
	case o.CUUID == "" && (!o.Exec || o.APIVersion):
		return errors.New("container UUID not provided: pass --cuuid")
	case o.Runtime == "":
		return errors.New("runtime path not provided: pass --runtime")
	case o.ExecAttach && !o.Exec:
		return errors.New("--exec-attach needs --exec")
	case o.Exec && o.ExecProcessSpec == "":
		return errors.New("exec process spec path not provided: pass --exec-process-spec")
	case o.Exec && o.Restore != "":
		return errors.New("cannot use --exec and --restore at the same time")
	case o.Restore != "":
		return errors.New("--restore (checkpoint restore) is not supported by tether-conmon: use /usr/bin/conmon for restores")
	}
	if err := unix.Access(o.Runtime, unix.X_OK); err != nil {
		return fmt.Errorf("runtime path %s is not valid: %w", o.Runtime, err)
	}
	if _, err := parseLogDrivers(o.LogPaths); err != nil {
		return err
	}
	if o.Bundle == "" && !o.Exec {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("no --bundle and no working directory: %w", err)
		}
		o.Bundle = wd
	}
	if o.ContainerPidFile == "" {
		o.ContainerPidFile = filepath.Join(o.Bundle, "pidfile-"+o.CID)
	}
	return nil
}

// launch is the process podman starts: it checks the command line, waits
// for podman's start byte (podman first moves it into the monitor's
// cgroup), starts the detached monitor with the same options and the
// inherited descriptors at the same numbers, writes --conmon-pidfile with
// the monitor's pid and returns, so that podman's wait ends with 0.
func launch(o *Options) error {
	fds := inheritedFds()
	if err := validate(o); err != nil {
		return err
	}
	if err := readStartByte("_OCI_STARTPIPE", !o.ExecAttach); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	args, err := daemonArgs(o)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if passthrough(o) {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	cmd.ExtraFiles = extraFiles(fds)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the monitor: %w", err)
	}
	if o.ConmonPidFile != "" {
		if err := os.WriteFile(o.ConmonPidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			cmd.Process.Kill()
			return fmt.Errorf("write conmon pid file: %w", err)
		}
	}
	cmd.Process.Release()
	return nil
}

// daemonArgs is the detached monitor's command line: for a container,
// serveArgs first (the only --root and --id on it, so restore.VerifyShim
// knows it as the live shim of that store folder), then the role and
// every option as one JSON argument.
func daemonArgs(o *Options) ([]string, error) {
	enc, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var args []string
	if !o.Exec {
		args = serveArgs(shimapi.ServeCreate, storeRoot(o), o.CID)
	}
	return append(args, "--tether-role", RoleDaemon, "--tether-options", string(enc)), nil
}

// inheritedFds lists the descriptors above 2 that the process was started
// with (podman's sync, start and attach pipes, --preserve-fds files,
// reserved ports).
func inheritedFds() []int {
	all, err := proc.Fds(0)
	if err != nil {
		return nil
	}
	var fds []int
	for _, fd := range all {
		if fd.Num < 3 || strings.HasPrefix(fd.Target, "/proc/") {
			continue // stdio, or the directory being listed
		}
		if flags, err := unix.FcntlInt(uintptr(fd.Num), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // the Go runtime's own
		}
		fds = append(fds, fd.Num)
	}
	return fds
}

// extraFiles maps fds to exec.Cmd.ExtraFiles so each keeps its number.
func extraFiles(fds []int) []*os.File {
	max := 0
	for _, fd := range fds {
		max = maxInt(max, fd)
	}
	if max < 3 {
		return nil
	}
	out := make([]*os.File, max-2)
	for _, fd := range fds {
		out[fd-3] = os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd))
	}
	return out
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// pipeFromEnv returns the file named by the descriptor number in env
// (podman's _OCI_* variables), marked close-on-exec and removed from the
// environment, or nil when the variable is unset.
func pipeFromEnv(env string) (*os.File, error) {
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("%s=%q is not a descriptor number", env, v)
	}
	os.Unsetenv(env)
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), env), nil
}

// readStartByte blocks for podman's byte on the start pipe named by env;
// with closeAfter it closes the pipe (it is kept for exec attach, which
// waits for a second byte).
func readStartByte(env string, closeAfter bool) error {
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%s=%q is not a descriptor number", env, v)
	}
	var b [256]byte
	for {
		_, err = unix.Read(fd, b[:])
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("read the start pipe: %w", err)
	}
	if closeAfter {
		unix.Close(fd)
		os.Unsetenv(env)
	}
	return nil
}
