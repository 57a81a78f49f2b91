package conmon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

// A container's monitor is a front end over the shim core (package shim)
// running in this process, the way tether-shim and containerd's shim are:
// the core creates the container, reaps it, drains its output into the
// sinks given here (k8s-file, journald, passthrough) and into live
// followers (attach), and writes its pid and exit records durably in a
// store folder. On top of that this file speaks conmon's contract: the
// sync pipe, podman's pid and exit files, the exit command.
//
// The store folder is <exit-dir>/../tether-conmon/<cid> (the store root is
// shared by every monitor of one podman tmp dir). Next to the core's
// records it holds conmon.json, the monitor's options, so that an adopting
// monitor (watch.go) can take over: the core's Adopt and the restore
// verdict decide, as for tether's own shims.

// optionsFile is the front end's file in the store folder.
const optionsFile = "conmon.json"

// storeRoot is the store root of a container's monitor.
func storeRoot(o *Options) string {
	if o.ExitDir != "" {
		return filepath.Join(filepath.Dir(filepath.Clean(o.ExitDir)), "tether-conmon")
	}
	return filepath.Join(o.Bundle, "tether-conmon")
}

// serveArgs is how a container's monitor names itself on its command line,
// before conmon's options: "serve|serve-adopt --root ROOT --id CID", the
// command line restore.VerifyShim recognises as a live shim of that
// container (shimapi.ServeCreate, ServeAdopt).
func serveArgs(action, root, cid string) []string {
	return []string{action, "--root", root, "--id", cid}
}

// cutServeArgs strips serveArgs from the front of args.
func cutServeArgs(args []string) (action, root, cid string, rest []string) {
	if len(args) >= 5 && (args[0] == shimapi.ServeCreate || args[0] == shimapi.ServeAdopt) &&
		args[1] == "--root" && args[3] == "--id" {
		return args[0], args[2], args[4], args[5:]
	}
	return "", "", "", args
}

// frontEnd is one container's monitor: the core and conmon's files.
type frontEnd struct {
	o    *Options
	log  *logrus.Entry
	st   *store.Folder
	rec  *store.Record // the core's record, written by makeFolder
	core *shim.Shim
	sync *os.File // _OCI_SYNCPIPE, nil when podman passed none
	att  *attachServer
	ctl  *ctlFifo

	sinkMu   sync.Mutex // guards sinks and att, which the core's drain uses
	sinks    []sink
	timedOut atomic.Bool
}

func newFrontEnd(o *Options, st *store.Folder) *frontEnd {
	return &frontEnd{o: o, st: st, log: monitorLog(o)}
}

// sinkWriter is one output stream of the container as the core's sink:
// every -l driver gets each chunk, stamped with the time it was read, then
// the attached clients (conmon's order: the log first).
type sinkWriter struct {
	f *frontEnd
	s crilog.Stream
}

func (w sinkWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.f.sinkMu.Lock()
	defer w.f.sinkMu.Unlock()
	for _, s := range w.f.sinks {
		s.write(w.s, now, p)
	}
	if w.f.att != nil {
		prefix := byte(attachStdout)
		if w.s == crilog.Stderr {
			prefix = attachStderr
		}
		w.f.att.send(prefix, p)
	}
	return len(p), nil
}

// initIO is the core's IO for init: no log of the core's own (podman's -l
// drivers are the logs), the sinks; with -l passthrough the monitor's own
// stdio.
func (f *frontEnd) initIO() shim.IO {
	io := shim.IO{NoLog: true, Stdout: sinkWriter{f, crilog.Stdout}, Stderr: sinkWriter{f, crilog.Stderr}}
	if passthrough(f.o) {
		io.Stdout, io.Stderr = multiWriter{io.Stdout, os.Stdout}, multiWriter{io.Stderr, os.Stderr}
		if f.o.Stdin && !f.o.Terminal {
			io.Stdin = os.Stdin
		}
	}
	return io
}

// multiWriter writes to both; the first's result counts.
type multiWriter [2]interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	m[1].Write(p)
	return m[0].Write(p)
}

// record is the core's description of the container: podman's runtime
// with podman's global arguments and the runtime's default root.
func (f *frontEnd) record() *store.Record {
	boot, _ := proc.BootID()
	return &store.Record{Version: store.Version, ID: f.o.CID, Bundle: f.o.Bundle,
		Runtime: f.o.Runtime, RuntimeArgs: runtimeArgs(f.o), Terminal: f.o.Terminal,
		Stdin: f.o.Stdin && !passthrough(f.o), CreatedAt: time.Now().UTC(), BootID: boot}
}

// runtimeArgs are the runtime's global arguments podman asked for.
func runtimeArgs(o *Options) []string {
	args := []string{}
	if o.SystemdCgroup {
		args = append(args, "--systemd-cgroup")
	}
	return append(args, o.RuntimeArgs...)
}

// runContainer is the detached monitor of a container: it creates it with
// the core, tells podman the pid, serves output, attach and ctl, and
// records the exit. It returns the monitor's exit code.
func runContainer(o *Options, root string) int {
	st, err := store.Open(root, o.CID)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tether-conmon: %v\n", err)
		return 1
	}
	f := newFrontEnd(o, st)
	ctx := context.Background()
	exit, err := f.create(ctx)
	if err != nil {
		f.log.WithError(err).Error("create failed")
		f.report(-1, err.Error())
		f.closeSync()
		return 1
	}
	return f.serveUntilExit(ctx, exit)
}

// create makes the store folder, the core, the endpoints and the
// container, and reports init's pid to podman. On error nothing is left.
func (f *frontEnd) create(ctx context.Context) (<-chan *store.ExitRecord, error) {
	var err error
	if f.sync, err = pipeFromEnv("_OCI_SYNCPIPE"); err != nil {
		return nil, err
	}
	if err := f.makeFolder(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.teardown()
		}
	}()
	if f.sinks, err = openSinks(f.o); err != nil {
		return nil, err
	}
	f.core, err = shim.New(ctx, shim.Options{Store: f.st, Record: f.rec, InitIO: f.initIO(),
		Log: f.log, NoFolderWatch: true, NoPivot: f.o.NoPivot, NoNewKeyring: f.o.NoNewKeyring,
		ExtraFiles: preservedFds(f.o)})
	if err != nil {
		return nil, err
	}
	exit := f.waitInit()
	if err := f.serveEndpoints(); err != nil {
		return nil, err
	}
	pid, err := f.core.Create(ctx)
	if err != nil {
		return nil, runtimeError(f.o, err)
	}
	if err := atomicfile.WriteFile(f.o.ContainerPidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		f.core.Delete(ctx, true)
		return nil, fmt.Errorf("write the container pid file: %w", err)
	}
	ok = true
	f.report(pid, "")
	if err := ensureWatcher(f.o); err != nil {
		f.log.WithError(err).Warn("no watcher: the container is not adopted if this monitor dies")
	}
	return exit, nil
}

// makeFolder makes the store folder with the core's record and the
// monitor's options. A folder left by an earlier run of the same container
// (podman start again) is removed unless a monitor still serves it.
func (f *frontEnd) makeFolder() error {
	err := f.st.Make()
	if errors.Is(err, os.ErrExist) {
		rec, rerr := f.st.ReadRecord()
		switch r := restore.Examine(f.st, rec, rerr); r.Verdict {
		case restore.Live, restore.Orphan:
			return fmt.Errorf("container %s already has a monitor (%s): stop it first", f.o.CID, r.Verdict)
		}
		if err := f.st.Remove(); err != nil {
			return err
		}
		err = f.st.Make()
	}
	if err != nil {
		return fmt.Errorf("make the monitor's folder: %w", err)
	}
	f.rec = f.record()
	if err := f.st.WriteRecord(f.rec); err != nil {
		f.st.Remove()
		return err
	}
	if err := writeOptions(f.st, f.o); err != nil {
		f.st.Remove()
		return err
	}
	return nil
}

// writeOptions keeps the options in the folder for an adopting monitor.
func writeOptions(st *store.Folder, o *Options) error {
	c := *o
	c.Role, c.AdoptStatus = "", ""
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(st.Dir(), optionsFile), b, 0o600)
}

// readOptions reads a folder's options.
func readOptions(st *store.Folder) (*Options, error) {
	b, err := os.ReadFile(filepath.Join(st.Dir(), optionsFile))
	if err != nil {
		return nil, err
	}
	var o Options
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(st.Dir(), optionsFile), err)
	}
	return &o, nil
}

// teardown undoes a failed create: endpoints, sinks, the core and the
// folder.
func (f *frontEnd) teardown() {
	f.closeEndpoints()
	f.closeSinks()
	if f.core != nil {
		f.core.Close()
	}
	f.st.Remove()
}

// waitInit subscribes to the core's events (before Create or Adopt, so
// the exit cannot be missed) and delivers init's exit record. Each OOM
// kill in the container writes podman's OOM files at once, as conmon
// does.
func (f *frontEnd) waitInit() <-chan *store.ExitRecord {
	sub := f.core.Subscribe()
	ch := make(chan *store.ExitRecord, 1)
	go func() {
		defer sub.Close()
		for {
			ev, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			switch {
			case ev.Kind == shim.EventOOM:
				f.writeOOMFiles()
			case ev.Kind == shim.EventExit && ev.Exec == "":
				exit := ev.Exit
				ch <- &exit
				return
			}
		}
	}()
	return ch
}

// writeOOMFiles writes podman's OOM marks, as conmon does on an OOM kill
// in the container: the empty files <bundle>/oom (podman 4) and
// <persist-dir>/oom (podman 5), which podman reads, with the exit file,
// as State.OOMKilled. Idempotent.
func (f *frontEnd) writeOOMFiles() {
	if err := writeOOMFiles(f.o); err != nil {
		f.log.WithError(err).Warn("write the oom file")
	}
}

// serveEndpoints binds the attach socket (before podman is told the pid)
// and the ctl fifo, both served by the core.
func (f *frontEnd) serveEndpoints() error {
	if f.o.Bundle == "" {
		return nil
	}
	in := &coreInput{core: f.core, leaveOpen: f.o.LeaveStdinOpen, terminal: f.o.Terminal}
	att, err := listenAttach(f.o, in)
	if err != nil {
		return err
	}
	f.sinkMu.Lock()
	f.att = att
	f.sinkMu.Unlock()
	go att.accept()
	ctl, err := openCtl(f.o.Bundle, f.resize, f.reopenLogs)
	if err != nil {
		return err
	}
	f.ctl = ctl
	return nil
}

func (f *frontEnd) resize(h, w uint16) {
	if err := f.core.Resize("", w, h); err != nil {
		f.log.WithError(err).Debug("resize")
	}
}

func (f *frontEnd) reopenLogs() {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	for _, s := range f.sinks {
		if fs, ok := s.(*fileSink); ok {
			fs.w.Reopen()
		}
	}
}

// coreInput is the attach socket's input to the core: a client's data is
// init's stdin; its SHUT_WR closes stdin (not with a terminal, and not
// with --leave-stdin-open).
type coreInput struct {
	core                *shim.Shim
	leaveOpen, terminal bool
}

func (c *coreInput) write(p []byte) { c.core.WriteStdin("", p) }

func (c *coreInput) clientDone() {
	if !c.leaveOpen && !c.terminal {
		c.core.CloseStdin("")
	}
}

// serveUntilExit waits for init's exit record (and kills init at
// --timeout), then finishes.
func (f *frontEnd) serveUntilExit(ctx context.Context, exit <-chan *store.ExitRecord) int {
	if f.o.Timeout > 0 {
		t := time.AfterFunc(time.Duration(f.o.Timeout)*time.Second, func() {
			f.timedOut.Store(true)
			f.core.Kill(ctx, "", syscall.SIGKILL, false)
		})
		defer t.Stop()
	}
	return f.finish(<-exit)
}

// finish ends the streams, writes podman's exit files, runs the exit
// command, and removes the store folder; it returns the monitor's exit
// code (the status, as conmon does).
func (f *frontEnd) finish(exit *store.ExitRecord) int {
	exit = f.withTracedStatus(exit)
	f.closeEndpoints()
	f.closeSinks()
	status, msg := exit.Status, ""
	if f.timedOut.Load() {
		status, msg = -1, "command timed out"
	}
	if exit.OOMKilled {
		// before the exit file: podman looks for it once it reads that
		// (the live event wrote it already, unless this monitor adopted
		// the container after the kill)
		f.writeOOMFiles()
	}
	if err := writeExitFiles(f.o, status); err != nil {
		f.log.WithError(err).Error("write exit file")
	}
	f.log.WithFields(logrus.Fields{"status": status, "reason": exit.Reason, "oom_killed": exit.OOMKilled}).Info("container exited")
	if msg != "" {
		f.log.Warn(msg)
	}
	f.closeSync()
	runExitCommand(f.o, f.log, f.startCommand)
	if err := removeFolder(f.st); err != nil {
		f.log.WithError(err).Warn("remove the monitor's folder")
	}
	if f.core != nil {
		f.core.Close()
	}
	return status & 0xff
}

// removeFolder removes a store folder in one step as a watcher sees it:
// renamed out of the way (a name no store ID has), then removed, so no
// scan ever reads it half removed.
func removeFolder(st *store.Folder) error {
	gone := filepath.Join(st.Root(), ".gone-"+st.ID())
	if err := os.Rename(st.Dir(), gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(gone)
}

// startCommand runs a helper through the core's reaper when there is a
// core (it owns wait4), directly otherwise.
func (f *frontEnd) startCommand(cmd *exec.Cmd) (func() (int, error), error) {
	if f.core != nil {
		return f.core.StartCommand(cmd)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() (int, error) {
		err := cmd.Wait()
		return cmd.ProcessState.ExitCode(), err
	}, nil
}

func (f *frontEnd) closeEndpoints() {
	f.sinkMu.Lock()
	att := f.att
	f.att = nil
	f.sinkMu.Unlock()
	if att != nil {
		att.close()
	}
	if f.ctl != nil {
		f.ctl.close()
		f.ctl = nil
	}
}

func (f *frontEnd) closeSinks() {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	closeSinks(f.sinks)
	f.sinks = nil
}

func (f *frontEnd) report(data int, msg string) {
	if f.sync != nil {
		writeSync(f.sync, data, msg)
	}
}

func (f *frontEnd) closeSync() {
	if f.sync != nil {
		f.sync.Close()
		f.sync = nil
	}
}

// monitorLog is the monitor's own log: JSON lines in
// <bundle>/tether-conmon.log (stderr without a bundle).
func monitorLog(o *Options) *logrus.Entry {
	l := logrus.New()
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetLevel(logrus.InfoLevel)
	if o.LogLevel == "debug" || o.LogLevel == "trace" {
		l.SetLevel(logrus.DebugLevel)
	}
	if fl, err := os.OpenFile(filepath.Join(o.Bundle, "tether-conmon.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600); err == nil {
		l.SetOutput(fl)
	} else {
		l.SetOutput(os.Stderr)
	}
	return l.WithFields(logrus.Fields{"cid": o.CID, "pid": os.Getpid()})
}
