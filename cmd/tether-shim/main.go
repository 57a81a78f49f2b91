// Command tether-shim serves one container. A manager runs
// "tether-shim start --root R --id ID" with a ready pipe on fd 3; that start
// helper re-executes itself as "serve" in a new session with its stdio on
// the shim log and exits at once, so the shim belongs to no manager.
// A short-lived manager (the CLI) may skip the helper and run "serve" itself
// (see shimapi.DirectEnv).
// "tether-shim adopt --root R --id ID" does the same for a container whose
// shim died while its init runs on: the new shim ("serve-adopt") creates
// nothing, takes the init by its recorded identity and serves it. With
// --lock-fd N the helper hands the container folder's lock (fd N, held by
// the manager) to the shim, which keeps it until it has reported ready.
//
// Signals: SIGTERM, SIGINT and SIGHUP are ignored (the shim ends only when
// its container is deleted, so an accidental kill of a process group never
// loses a container's exit); SIGPIPE is ignored (a client that hangs up
// mid-answer is an error on that connection only); the reaper wakes on
// child exits through waitid, not SIGCHLD. SIGKILL of the shim leaves the container running: a later
// manager sees the shim gone and acts on the records.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/gotune"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shim/control"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == shim.TraceExitAction { // an adopting core's exit tracer
		os.Exit(shim.TraceExitMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == shim.OOMExecAction {
		// The shim runs the OCI runtime through this; see shim.OOMExecAction.
		err := shim.OOMExec(os.Args[2:])
		fmt.Fprintln(os.Stderr, "tether-shim:", err)
		os.Exit(127)
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "tether-shim: usage: tether-shim start|adopt --root DIR --id ID [--lock-fd N] [--debug]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("tether-shim", flag.ExitOnError)
	root := fs.String("root", "", "runtime root")
	id := fs.String("id", "", "container ID")
	debugLog := fs.Bool("debug", false, "log at debug level")
	lockFD := fs.Int("lock-fd", 0, "container folder lock held until ready")
	handoff := fs.String("handoff", "", "take the container over from this handoff (in-place upgrade)")
	fs.Parse(os.Args[2:])
	if *root == "" || ids.ValidID(*id) != nil {
		fmt.Fprintln(os.Stderr, "tether-shim: --root and a valid --id are required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case shimapi.ActionStart:
		err = startDaemon(*root, *id, shimapi.ServeCreate, *lockFD, os.Args[2:])
	case shimapi.ActionAdopt:
		err = startDaemon(*root, *id, shimapi.ServeAdopt, *lockFD, os.Args[2:])
	case shimapi.ServeCreate, shimapi.ServeAdopt:
		if direct := os.Getenv(shimapi.DirectEnv) == "1"; direct && *handoff == "" {
			closeFdsFrom(4 + min(*lockFD, 1)) // what the start helper's closeStrayFds does
		}
		if *handoff != "" {
			err = serveUpgraded(*root, *id, *debugLog, *handoff)
			break
		}
		err = serve(*root, *id, *debugLog, *lockFD, os.Args[1] == shimapi.ServeAdopt)
	case shimapi.CheckHandoff:
		err = checkHandoff(*root, *id, *handoff)
	default:
		err = fmt.Errorf("unknown action %q: use start or adopt", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tether-shim:", err)
		os.Exit(1)
	}
}

// startDaemon runs the shim proper (action) in its own session, hands it
// the ready pipe (fd 3) and the folder lock (fd 4, when lockFD is set) and
// returns without waiting.
func startDaemon(root, id, action string, lockFD int, args []string) error {
	logf, err := os.OpenFile(store.At(root, id).ShimLogPath(),
		os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	closeStrayFds()
	cmd := exec.Command(self, append([]string{action}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "ready")}
	if lockFD > 0 { // becomes fd 4 in the shim, as --lock-fd says
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(lockFD), "lock"))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	cmd.Env = gotune.Env(os.Environ()) // the shim starts tuned: see package gotune
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// closeStrayFds marks every fd from 3 up close-on-exec, so that nothing the
// manager inherited from its own caller (a shell's or CI runner's pipe left
// without O_CLOEXEC) is pinned open for the life of the shim, which would
// keep that caller waiting for an EOF. The ready pipe, fd 3, is handed on
// explicitly through ExtraFiles, which clears the flag in the child.
func closeStrayFds() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	ents, _ := os.ReadDir("/proc/self/fd") // kernels before 5.11
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			unix.CloseOnExec(fd)
		}
	}
}

// closeFdsFrom closes every fd from first up: a shim started directly
// (shimapi.DirectEnv) keeps only its stdio, the ready pipe (3) and the
// lock (4); anything else is what its starter inherited from its own
// caller without O_CLOEXEC. It runs before the shim opens anything.
func closeFdsFrom(first int) {
	if unix.CloseRange(uint(first), math.MaxUint32, 0) == nil {
		return
	}
	ents, _ := os.ReadDir("/proc/self/fd") // kernels before 5.9
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.Close(fd)
		}
	}
}

func serve(root, id string, debugLog bool, lockFD int, adopt bool) error {
	log := setUp(id, debugLog)
	ready := os.NewFile(3, "ready")
	syscall.CloseOnExec(3)
	var relayed chan struct{}
	if lockFD > 0 {
		syscall.CloseOnExec(lockFD) // never inherited by the runtime or the container
		ready, relayed = holdLock(ready, os.NewFile(uintptr(lockFD), "lock"))
	}
	err := run(context.Background(), store.At(root, id), adopt, ready, log)
	if relayed != nil {
		<-relayed // the ready message (an error, here) reaches the manager before we exit
	}
	if err != nil {
		log.WithError(err).Error("shim failed")
	}
	return err
}

// setUp tunes the Go runtime, ignores the signals the shim ignores and
// makes its logger.
func setUp(id string, debugLog bool) *logrus.Entry {
	gotune.Apply() // memory first: see package gotune
	// Ignored outright (SIG_IGN, so the kernel drops them): os/signal
	// would cost three threads for good (see reaper.Monitor.Run). The
	// runtimes reset dispositions for the container's processes.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	logger := logrus.New()
	logger.SetOutput(os.Stderr) // the shim log, set up by the start helper
	logger.SetFormatter(&logrus.JSONFormatter{})
	if debugLog {
		logger.SetLevel(logrus.DebugLevel)
	}
	return logger.WithFields(logrus.Fields{"id": id, "shim_pid": os.Getpid()})
}

// run is tether's shim: the core with the control socket as its front
// end. The socket is bound before the container is created (or adopted),
// so a manager asking meanwhile hears "creating"; the ready message goes
// out once Create or Adopt has returned; the shim serves until a delete
// has been answered.
func run(ctx context.Context, st *store.Folder, adopt bool, ready *os.File, log *logrus.Entry) error {
	var srv *control.Server
	core, err := shim.New(ctx, shim.Options{Store: st, Log: log,
		OnRestore: func(ctx context.Context) error { return srv.Restore(ctx) }})
	if err != nil {
		sendReady(ready, shimapi.NewReady(0, err))
		return err
	}
	defer core.Close()
	srv = control.New(core, st, log)
	if err := srv.Listen(); err != nil {
		sendReady(ready, shimapi.NewReady(0, err))
		return err
	}
	go srv.Serve(ctx)
	var pid int
	if adopt {
		pid, err = core.Adopt(ctx)
	} else {
		pid, err = core.Create(ctx)
	}
	msg := shimapi.NewReady(pid, err)
	msg.AutoRemove = err == nil && core.Record().AutoRemove
	sendReady(ready, msg)
	if err != nil {
		srv.Close()
		return err
	}
	<-srv.Done()
	return nil
}

// sendReady writes the one ready message and closes the pipe.
func sendReady(ready *os.File, msg shimapi.Ready) {
	if ready == nil {
		return
	}
	shimapi.WriteMessage(ready, msg)
	ready.Close()
}

// holdLock keeps the container folder's lock until the shim has sent its
// ready message, so that no manager decides about the folder while the
// container is being created or adopted, even when the manager that asked
// has died. The shim writes to the returned pipe; its message is relayed
// to ready, then the lock is released. relayed is closed after that.
func holdLock(ready, lock *os.File) (w *os.File, relayed chan struct{}) {
	r, w, err := os.Pipe()
	if err != nil {
		lock.Close()
		return ready, nil
	}
	relayed = make(chan struct{})
	go func() {
		defer close(relayed)
		io.Copy(ready, r)
		r.Close()
		ready.Close()
		lock.Close()
	}()
	return w, relayed
}
