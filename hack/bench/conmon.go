package main

import (
	"bytes"
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

	"github.com/tether-run/tether/internal/proc"
)

// conmonSet is the conmon baseline: conmon (CRI-O's and podman's monitor)
// driving the same OCI runtime on the same bundle, with a k8s-file log,
// an exit folder and an attach socket folder, as podman runs it.
type conmonSet struct {
	b    *bench
	bin  string
	dir  string // conmon's files: pid files, logs, exits, sockets
	root string // the runtime's --root for these containers
	ids  []string
	mons map[string]proc.Identity
}

// errNoConmon says why the memory row has no baseline.
var errNoConmon = errors.New("conmon is not installed (hack/bench-deps.sh installs it from Debian's conmon package; it failed or apt is unavailable)")

func (b *bench) newConmonSet() (*conmonSet, error) {
	bin, err := exec.LookPath("conmon")
	if err != nil {
		return nil, errNoConmon
	}
	dir := filepath.Join(b.dir, "conmon")
	for _, d := range []string{"exit", "sock", "oci"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &conmonSet{b: b, bin: bin, dir: dir, root: filepath.Join(dir, "oci"),
		mons: map[string]proc.Identity{}}, nil
}

// start creates container i under a new conmon, waits for conmon's sync
// message (the container is created), then starts it with the runtime.
func (c *conmonSet) start(i int) error {
	_, err := c.launch(c.b.id("conmon", i), c.b.sleepBundle)
	return err
}

// file is conmon's file suffix of container id (pid files, log).
func (c *conmonSet) file(id, suffix string) string { return filepath.Join(c.dir, id+suffix) }

// exitPath is the exit file conmon writes for id in its exit folder.
func (c *conmonSet) exitPath(id string) string { return filepath.Join(c.dir, "exit", id) }

// logPath is container id's k8s-file log.
func (c *conmonSet) logPath(id string) string { return c.file(id, ".log") }

// launch runs container id of bundle under a new conmon, as podman does:
// conmon forks and runs the runtime's create, its sync message says the
// container is created, then the runtime's start. It returns the time of
// all that (conmon's start to the end of the runtime's start).
func (c *conmonSet) launch(id, bundle string) (time.Duration, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	f := func(s string) string { return c.file(id, s) }
	cmd := exec.Command(c.bin, "--api-version", "1", "-c", id, "-u", id, "-n", id,
		"-r", c.b.rtPath, "-b", bundle, "-p", f(".pid"), "-P", f(".conmon.pid"),
		"-l", "k8s-file:"+f(".log"), "--exit-dir", filepath.Join(c.dir, "exit"),
		"--socket-dir-path", filepath.Join(c.dir, "sock"),
		"--runtime-arg", "--root="+c.root, "--log-level", "error")
	cmd.Env = append(os.Environ(), "_OCI_SYNCPIPE=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	t0 := time.Now()
	err = cmd.Run() // conmon forks; the parent exits at once
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("conmon %s: %v: %s", id, err, strings.TrimSpace(errb.String()))
	}
	c.ids = append(c.ids, id)
	if err := c.readSync(r, id); err != nil {
		return 0, err
	}
	mon, err := readPidIdentity(f(".conmon.pid"))
	if err != nil {
		return 0, fmt.Errorf("conmon %s: %w", id, err)
	}
	c.mons[id] = mon
	_, err = c.b.runtimeCmd(c.root, "start", id)
	return time.Since(t0), err
}

// remove deletes container id (untimed) and waits for its conmon to end,
// killing one that lingers, and removes its files.
func (c *conmonSet) remove(id string) error {
	_, err := c.b.runtimeCmd(c.root, "delete", "--force", id)
	if m, ok := c.mons[id]; ok && !m.WaitExit(5*time.Second) {
		m.Signal(syscall.SIGKILL)
	}
	delete(c.mons, id)
	for i, x := range c.ids {
		if x == id {
			c.ids = append(c.ids[:i], c.ids[i+1:]...)
			break
		}
	}
	for _, p := range []string{c.file(id, ".pid"), c.file(id, ".conmon.pid"), c.logPath(id), c.exitPath(id)} {
		os.Remove(p)
	}
	return err
}

// readSync reads conmon's {"data": PID} (or an error message) from the
// sync pipe, at most cmdTimeout.
func (c *conmonSet) readSync(r *os.File, id string) error {
	r.SetReadDeadline(time.Now().Add(cmdTimeout))
	var msg struct {
		Data    int    `json:"data"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(r).Decode(&msg); err != nil {
		return fmt.Errorf("conmon %s: no sync message: %v", id, err)
	}
	if msg.Data <= 0 {
		return fmt.Errorf("conmon %s: create failed: %s", id, msg.Message)
	}
	return nil
}

// pids returns the conmon processes of the running containers.
func (c *conmonSet) pids() []int {
	var out []int
	for _, id := range c.ids {
		if m, ok := c.mons[id]; ok && m.Alive() {
			out = append(out, m.Pid)
		}
	}
	return out
}

// stop deletes every container and waits for its conmon to exit (conmon
// ends when its container does), killing a conmon that lingers.
func (c *conmonSet) stop() {
	for _, id := range c.ids {
		c.b.runtimeCmd(c.root, "delete", "--force", id)
		if m, ok := c.mons[id]; ok && !m.WaitExit(5*time.Second) {
			m.Signal(syscall.SIGKILL)
		}
	}
	c.ids = nil
}

// readPidIdentity reads a plain pid file and identifies the live process.
func readPidIdentity(path string) (proc.Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return proc.Identity{}, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return proc.Identity{}, fmt.Errorf("%s: %w", path, err)
	}
	return proc.Identify(pid)
}

// killConmons is the cleanup of conmon monitors left running: every conmon
// pid file in dir names a process that is killed only if it is still a
// conmon whose command line names the run's folder.
func killConmons(dir, runDir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.conmon.pid"))
	for _, f := range files {
		id, err := readPidIdentity(f)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(id.Pid) + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(runDir)) {
			continue
		}
		id.Signal(syscall.SIGKILL)
	}
}
