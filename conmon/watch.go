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
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/internal/cnproc"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shim"
	"golang.org/x/sys/unix"
)

// Adoption, what conmon lacks. conmon keeps the only copy of what podman
// needs after a container's exit (the read ends of its output pipes and
// its status, as the parent of its init). When conmon is killed, podman
// never learns the status. Here:
//
//   - each container monitor registers a record (its options, its own
//     identity and the init's) in a folder next to podman's exit folder,
//     <exit-dir>/../tether-conmon/<cid>.json, and makes sure a watcher
//     runs for that folder (one per podman tmp dir, started on demand by
//     the monitors, gone when no monitor is registered);
//   - the watcher holds extra read ends of every registered container's
//     stdout and stderr pipes (so a container never writes into a pipe
//     without reader, and nothing it writes is lost) and watches exits
//     through the kernel's process events connector;
//   - when a registered monitor is gone while its exit file is missing,
//     the watcher starts a new monitor in adopt mode with those read ends:
//     it rebinds attach and ctl, continues the log, learns the init's true
//     status from the connector (shim.ExitWatcher), writes the exit files
//     and runs the exit command. If the init ended before the adopter
//     could watch it, the watcher's own listener has the status and a
//     second adopter just records it.
//
// Exec sessions are not adopted (a killed exec monitor loses its session,
// as with conmon); terminals are not adopted (the pty master dies with the
// monitor and the container's session is hung up).

// watchPoll is how often the watcher looks at its monitors.
const watchPoll = 300 * time.Millisecond

// watchIdle is how long the watcher stays without any monitor to watch.
const watchIdle = 3 * time.Second

// record is what a container monitor registers.
type record struct {
	Options *Options      `json:"options"`
	Monitor proc.Identity `json:"monitor"`
	Init    proc.Identity `json:"init"`
}

// registryDir is the folder of records for the monitors of one podman
// tmp dir, or "" when the monitor has no exit folder to be found by.
func registryDir(o *Options) string {
	if o.ExitDir == "" || o.Exec {
		return ""
	}
	return filepath.Join(filepath.Dir(filepath.Clean(o.ExitDir)), "tether-conmon")
}

func recordPath(o *Options) string { return filepath.Join(registryDir(o), o.CID+".json") }

// register records this monitor and makes sure a watcher runs.
func (m *monitor) register() {
	dir := registryDir(m.o)
	if dir == "" || m.o.Terminal {
		return
	}
	if err := m.writeRecord(); err != nil {
		m.log.WithError(err).Warn("register for adoption")
		return
	}
	if err := ensureWatcher(m.o); err != nil {
		m.log.WithError(err).Warn("start the watcher")
	}
}

func (m *monitor) writeRecord() error {
	if err := os.MkdirAll(registryDir(m.o), 0o700); err != nil {
		return err
	}
	self, err := proc.Identify(os.Getpid())
	if err != nil {
		return err
	}
	init, err := proc.Identify(m.pid)
	if err != nil {
		return err
	}
	o := *m.o
	o.Role, o.Adopt = "", ""
	b, err := json.Marshal(record{Options: &o, Monitor: self, Init: init})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(recordPath(m.o), b, 0o600)
}

// unregister removes the record once the exit file is written.
func (m *monitor) unregister() {
	if registryDir(m.o) != "" {
		os.Remove(recordPath(m.o))
	}
}

// ensureWatcher starts the registry's watcher unless one holds its lock.
func ensureWatcher(o *Options) error {
	dir := registryDir(o)
	lock := filepath.Join(dir, "watcher.lock")
	fd, err := unix.Open(lock, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
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

// watcher is the registry's watcher process.
type watcher struct {
	dir   string
	exits *cnproc.Listener
	held  map[string]*heldOutput // by cid
}

// heldOutput is what the watcher keeps of one container.
type heldOutput struct {
	rec            record
	stdout, stderr *os.File
	tries          int
}

// runWatch is the watcher's main loop; it returns when it has had nothing
// to watch for watchIdle, or when another watcher holds the lock.
func runWatch(o *Options) error {
	w := &watcher{dir: registryDir(o), held: map[string]*heldOutput{}}
	fd, err := unix.Open(filepath.Join(w.dir, "watcher.lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil
	}
	pidFile := filepath.Join(w.dir, "watcher.pid")
	atomicfile.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600)
	defer os.Remove(pidFile)
	if w.exits, err = cnproc.Listen(); err != nil {
		w.exits = nil // adopters then report an unknown status
	}
	idleSince := time.Now()
	for {
		if w.scan() > 0 {
			idleSince = time.Now()
		} else if time.Since(idleSince) > watchIdle {
			return nil
		}
		time.Sleep(watchPoll)
	}
}

// scan looks at every record once; it returns how many it watches.
func (w *watcher) scan() int {
	ents, _ := os.ReadDir(w.dir)
	seen := map[string]bool{}
	for _, e := range ents {
		cid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		rec, err := readRecord(filepath.Join(w.dir, e.Name()))
		if err != nil {
			continue
		}
		seen[cid] = true
		w.check(cid, rec)
	}
	for cid, h := range w.held {
		if !seen[cid] {
			h.close()
			delete(w.held, cid)
		}
	}
	return len(seen)
}

func readRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Options == nil {
		return r, fmt.Errorf("record %s: unreadable", path)
	}
	return r, nil
}

// check holds a new container's output and adopts it once its monitor is
// gone without an exit file.
func (w *watcher) check(cid string, rec record) {
	h := w.held[cid]
	if h == nil {
		h = &heldOutput{rec: rec}
		if w.exits != nil {
			w.exits.Watch(rec.Init.Pid)
		}
		if rec.Init.Alive() {
			h.stdout, h.stderr = proc.ReopenOutput(rec.Init.Pid)
		}
		w.held[cid] = h
	}
	h.rec = rec
	if rec.Monitor.Alive() {
		return
	}
	if exitFileExists(rec.Options) {
		os.Remove(recordPath(rec.Options))
		return
	}
	h.tries++
	if h.tries > 5 {
		os.Remove(recordPath(rec.Options)) // give up: never loop for ever
		return
	}
	status := ""
	if !rec.Init.Alive() && w.exits != nil {
		if st, err := w.exits.StatusOf(rec.Init.Pid); err == nil {
			status = strconv.Itoa(st)
		}
	}
	if err := startAdopter(recordPath(rec.Options), h, status); err == nil {
		waitAdopted(recordPath(rec.Options), rec.Monitor)
	}
}

// exitFileExists reports whether the container's exit was recorded.
func exitFileExists(o *Options) bool {
	_, err := os.Stat(filepath.Join(o.ExitDir, o.CID))
	return err == nil
}

// startAdopter starts a monitor in adopt mode with the held read ends as
// its fds 3 and 4.
func startAdopter(path string, h *heldOutput, status string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"--tether-role", RoleAdopt, "--tether-adopt", path}
	if status != "" {
		args = append(args, "--tether-status", status)
	}
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.ExtraFiles = []*os.File{h.stdout, h.stderr}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// waitAdopted waits briefly for the adopter to replace the monitor in the
// record (or remove it), so the next scan does not start a second one.
func waitAdopted(path string, old proc.Identity) {
	for i := 0; i < 50; i++ {
		rec, err := readRecord(path)
		if err != nil || rec.Monitor != old {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *heldOutput) close() {
	for _, f := range []*os.File{h.stdout, h.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// streams are the output streams in fd order (3, 4) of an adopter.
var streams = [2]crilog.Stream{crilog.Stdout, crilog.Stderr}

// errAdoptGone: the init named by the record is gone and no status is known.
var errAdoptGone = errors.New("the container's init is gone and its status was not observed")

// runAdopt serves a container whose monitor died: no create, the same
// files, attach socket and ctl fifo, the output pipes through the held
// read ends (fds 3 and 4), the status from the process events connector.
func runAdopt(o *Options) int {
	rec, err := readRecord(o.Adopt)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tether-conmon: adopt: %v\n", err)
		return 1
	}
	ro := rec.Options
	m := newMonitor(ro)
	m.log = m.log.WithField("adopted", true)
	m.pid = rec.Init.Pid
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.rm.Run(ctx) // for the exit command
	if o.AdoptStatus != "" {
		st, _ := strconv.Atoi(o.AdoptStatus)
		m.log.WithField("status", st).Info("init ended while no monitor ran; status from the watcher")
		return m.finish(st, "")
	}
	exits, err := cnproc.Listen()
	if err != nil {
		m.log.WithError(err).Warn("no process events: the exit status will be unknown")
	} else {
		defer exits.Close()
		exits.Watch(rec.Init.Pid)
	}
	pidfd, err := rec.Init.Open()
	if err != nil {
		m.log.WithError(err).Error("adopt: init gone before it could be watched")
		return 3 // the watcher retries with the status it saw
	}
	if err := m.adoptIO(); err != nil {
		m.log.WithError(err).Error("adopt: io")
	}
	if err := m.writeRecord(); err != nil {
		m.log.WithError(err).Error("adopt: record")
	}
	m.log.Info("adopted the container's init")
	status := m.serve(func() int {
		defer unix.Close(pidfd)
		proc.WaitFd(pidfd, -1)
		if exits == nil {
			return shim.UnknownStatus
		}
		st, err := exits.StatusOf(rec.Init.Pid)
		if err != nil {
			m.log.WithError(fmt.Errorf("%w: %v", errAdoptGone, err)).Error("adopt")
			return shim.UnknownStatus
		}
		return st
	})
	return m.finish(status, "")
}

// adoptIO takes the output read ends, opens the logs and rebinds attach
// and ctl.
func (m *monitor) adoptIO() error {
	sinks, err := openSinks(m.o)
	if err != nil {
		return err
	}
	m.sinks = sinks
	m.stdin = &stdinSink{leaveOpen: m.o.LeaveStdinOpen}
	for i, s := range []struct {
		fd     int
		stream string
	}{{3, "stdout"}, {4, "stderr"}} {
		if _, err := unix.FcntlInt(uintptr(s.fd), unix.F_GETFD, 0); err != nil {
			continue
		}
		unix.CloseOnExec(s.fd)
		unix.SetNonblock(s.fd, true)
		f := os.NewFile(uintptr(s.fd), s.stream)
		m.outs = append(m.outs, output{r: f, f: f, stream: streams[i]})
	}
	if len(m.outs) == 0 {
		out, errf := proc.ReopenOutput(m.pid)
		if out != nil {
			m.outs = append(m.outs, output{r: out, f: out, stream: streams[0]})
		}
		if errf != nil {
			m.outs = append(m.outs, output{r: errf, f: errf, stream: streams[1]})
		}
	}
	return m.serveEndpoints()
}
