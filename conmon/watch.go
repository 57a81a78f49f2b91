package conmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/internal/cnproc"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// Adoption, what conmon lacks. conmon keeps the only copy of what podman
// needs after a container's exit (the read ends of its output pipes and
// its status, as the parent of its init). When conmon is killed, podman
// never learns the status. Here:
//
//   - each container monitor is a shim core with its records in a store
//     folder (container.go), and makes sure a watcher runs for the store
//     root (one per podman tmp dir, started on demand by the monitors, gone
//     when the root has no container left);
//   - the watcher classifies every folder with the restore verdict, as
//     tether's manager does. For a live one it holds extra read ends of
//     the init's stdout and stderr pipes (so the container never writes
//     into a pipe without a reader, and what it writes meanwhile waits in
//     the pipe) and watches its exit through the kernel's process events
//     connector, or where there is none (rootless) by tracing the init
//     (trace.go);
//   - an orphan (monitor dead, init alive) gets a new monitor,
//     "serve-adopt", which runs the core's Adopt: the core reopens the
//     output pipes into the sinks, learns the true status from the
//     connector and writes the exit record; the front end rebinds attach
//     and ctl, then writes podman's exit files and runs the exit command;
//   - a container whose init ended while no monitor ran (lost) gets the
//     status the watcher's connector saw, or the unknown status with the
//     reason; one whose exit record was written but not podman's exit file
//     (stopped) gets podman's files and the exit command.
//
// Exec sessions are not adopted (a killed exec monitor loses its session,
// as with conmon). A terminal cannot be given back (the pty master died
// with the monitor), but the exit status still is.

// watchPoll is how often the watcher looks at the store root.
const watchPoll = 300 * time.Millisecond

// watchIdle is how long the watcher stays without any container.
const watchIdle = 3 * time.Second

// staleCreate is how long a folder may stay without a shim or an init
// (a monitor killed while creating) before the watcher removes it.
const staleCreate = time.Minute

// adoptTries bounds the adopters started for one container.
const adoptTries = 5

// The watcher's files in the store root (not container folders).
const (
	watcherLock = "watcher.lock"
	watcherPid  = "watcher.pid"
)

// ensureWatcher starts the store root's watcher unless one holds its lock.
func ensureWatcher(o *Options) error {
	if o.ExitDir == "" {
		return errors.New("no --exit-dir: nothing to adopt into")
	}
	root := storeRoot(o)
	fd, err := unix.Open(filepath.Join(root, watcherLock), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // a watcher runs
	}
	unix.Flock(fd, unix.LOCK_UN)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "--tether-role", RoleWatch, "--exit-dir", o.ExitDir, "--cid", "watcher")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// watcher is the store root's watcher process.
type watcher struct {
	root  string
	exits *cnproc.Listener // nil without process events
	held  map[string]*held // by container ID
	trace bool             // without process events: trace each init (trace.go)
}

// held is what the watcher keeps of one live container.
type held struct {
	init           proc.Identity
	stdout, stderr *os.File
	tries          int
	traced         bool // the watcher's tracer follows init
	traceTries     int
}

// runWatch is the watcher's main loop; it returns when the root has had
// no container for watchIdle, or when another watcher holds the lock.
func runWatch(o *Options) error {
	w := &watcher{root: storeRoot(o), held: map[string]*held{}}
	fd, err := unix.Open(filepath.Join(w.root, watcherLock), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil
	}
	pidFile := filepath.Join(w.root, watcherPid)
	atomicfile.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600)
	defer os.Remove(pidFile)
	if w.exits, err = cnproc.Listen(); err != nil {
		// rootless: no connector; the tracer gives the statuses instead
		w.exits, w.trace = nil, true
	}
	idleSince := time.Now()
	for {
		if w.scan() > 0 {
			idleSince = time.Now()
		} else if time.Since(idleSince) > watchIdle {
			// A monitor that started meanwhile saw the lock held and
			// started no watcher: let go, look once more, and stay if
			// there is something to watch and no other watcher took over.
			unix.Flock(fd, unix.LOCK_UN)
			if w.scan() == 0 || unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
				return nil
			}
			idleSince = time.Now()
		}
		time.Sleep(watchPoll)
	}
}

// scan looks at every container folder once; it returns how many there
// are.
func (w *watcher) scan() int {
	ents, _ := os.ReadDir(w.root)
	seen := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		st, err := store.Open(w.root, e.Name())
		if err != nil {
			continue
		}
		seen[e.Name()] = true
		w.check(st)
	}
	for id, h := range w.held {
		if !seen[id] {
			h.close()
			if w.exits != nil && h.init.Pid > 0 {
				w.exits.Forget(h.init.Pid)
			}
			delete(w.held, id)
		}
	}
	return len(seen)
}

// check acts on one folder by its restore verdict.
func (w *watcher) check(st *store.Folder) {
	rec, rerr := st.ReadRecord()
	r := restore.Examine(st, rec, rerr)
	h := w.held[st.ID()]
	switch r.Verdict {
	case restore.Live:
		if h == nil || h.init.Pid == 0 {
			w.hold(st)
		} else if w.trace && !h.traced && h.traceTries < traceTries && h.init.Alive() {
			w.traceHeld(st, h)
		}
		return
	case restore.Creating:
		if rec != nil && time.Since(rec.CreatedAt) > staleCreate {
			removeFolder(st)
		}
		return
	case restore.Corrupt:
		return
	}
	o, err := readOptions(st)
	if err != nil {
		return
	}
	if exitFileExists(o) {
		if r.Verdict != restore.Orphan {
			removeFolder(st) // podman has its exit: the monitor died in its last steps
		}
		return // an orphan with an exit file is not podman's current run: left alone
	}
	if h == nil {
		h = &held{}
		w.held[st.ID()] = h
	}
	if h.tries++; h.tries > adoptTries {
		return // never loop for ever; the folder stays for an operator
	}
	status := ""
	if r.Verdict == restore.Lost && w.exits != nil && h.init.Pid == r.Init.Pid {
		if s, err := w.exits.StatusOf(r.Init.Pid); err == nil {
			status = strconv.Itoa(s)
		}
	}
	if r.Verdict == restore.Lost && h.traced && h.init == r.Init {
		if s, ok := tracedStatus(st, h.init); ok {
			status = strconv.Itoa(s)
		}
	}
	old, _ := st.ReadShimPid()
	if err := startAdopter(st, status); err == nil {
		waitAdopted(st, old)
	}
}

// hold keeps read ends of a live container's output pipes and watches
// its init's exit. A monitor is live from its shim.pid on, while its
// create may still be under way: until init's pid record is there, the
// next scan tries again.
func (w *watcher) hold(st *store.Folder) {
	init, err := st.Init().ReadPid()
	if err != nil {
		return
	}
	h := w.held[st.ID()]
	if h == nil {
		h = &held{}
		w.held[st.ID()] = h
	}
	h.init = init
	if w.exits != nil {
		w.exits.Watch(init.Pid)
	}
	if init.Alive() {
		h.stdout, h.stderr = proc.ReopenOutput(init.Pid)
	}
	if w.trace && init.Alive() {
		w.traceHeld(st, h)
	}
}

// traceTries bounds the seizes tried for one init (one a scan): another
// tracer (a debugger) may hold it.
const traceTries = 3

// traceHeld starts tracing a held init (trace.go).
func (w *watcher) traceHeld(st *store.Folder, h *held) {
	h.traceTries++
	if err := traceInit(st.Dir(), h.init); err == nil {
		h.traced = true
	}
}

// exitFileExists reports whether podman's exit file was written.
func exitFileExists(o *Options) bool {
	_, err := os.Stat(filepath.Join(o.ExitDir, o.CID))
	return err == nil
}

// startAdopter starts "serve-adopt" for a folder.
func startAdopter(st *store.Folder, status string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append(serveArgs(shimapi.ServeAdopt, st.Root(), st.ID()), "--tether-role", RoleAdopt)
	if status != "" {
		args = append(args, "--tether-status", status)
	}
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// waitAdopted waits briefly for the adopter to write its shim.pid (or
// finish), so the next scan does not start a second one.
func waitAdopted(st *store.Folder, old proc.Identity) {
	for i := 0; i < 50; i++ {
		id, err := st.ReadShimPid()
		if errors.Is(err, os.ErrNotExist) && old.Pid != 0 || err == nil && id != old {
			return
		}
		if _, err := os.Stat(st.Dir()); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *held) close() {
	for _, f := range []*os.File{h.stdout, h.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// runAdopt serves a container whose monitor died. An orphan is adopted by
// the core (no create; the same files, attach socket and ctl fifo; the
// output pipes reopened; the true status from the process events
// connector). A container that ended meanwhile gets its exit record
// (status, when the watcher saw it, else unknown with the reason) and
// podman's files.
func runAdopt(root, cid, status string) int {
	st, err := store.Open(root, cid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tether-conmon: adopt: %v\n", err)
		return 1
	}
	o, err := readOptions(st)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tether-conmon: adopt: %v\n", err)
		return 1
	}
	f := newFrontEnd(o, st)
	f.log = f.log.WithField("adopted", true)
	rec, rerr := st.ReadRecord()
	r := restore.Examine(st, rec, rerr)
	switch r.Verdict {
	case restore.Orphan:
		return f.adopt(context.Background())
	case restore.Stopped:
		return f.finish(r.Exit)
	case restore.Lost:
		exit := r.Exit
		if n, err := strconv.Atoi(status); err == nil {
			exit = &store.ExitRecord{Version: store.Version, Pid: r.Init.Pid, Status: n}
		}
		exit.ExitedAt = time.Now().UTC()
		if err := st.Init().WriteExit(exit); err != nil {
			f.log.WithError(err).Error("write the exit record")
		}
		f.log.WithField("status", exit.Status).Info("init ended while no monitor ran")
		return f.finish(exit)
	}
	f.log.WithField("verdict", r.Verdict.String()).Warn("nothing to adopt")
	return 3
}

// adopt runs the core's Adopt and serves the container until it exits.
func (f *frontEnd) adopt(ctx context.Context) int {
	var err error
	if f.sinks, err = openSinks(f.o); err != nil {
		f.log.WithError(err).Warn("adopt: logs")
	}
	f.core, err = shim.New(ctx, shim.Options{Store: f.st, InitIO: f.initIO(), Log: f.log, NoFolderWatch: true})
	if err != nil {
		f.log.WithError(err).Error("adopt")
		return 1
	}
	exit := f.waitInit()
	pid, err := f.core.Adopt(ctx)
	if err != nil {
		f.log.WithError(err).Error("adopt")
		f.closeSinks()
		f.core.Close()
		return 3 // the watcher looks again: the verdict may have changed
	}
	if err := f.serveEndpoints(); err != nil {
		f.log.WithError(err).Warn("adopt: attach and ctl")
	}
	f.log.WithField("pid", pid).Info("adopted the container's init")
	return f.serveUntilExit(ctx, exit)
}
