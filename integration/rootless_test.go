package integration

// The rootless suite: the CLI run by an unprivileged user the test creates
// (a name unique to the run, subordinate id ranges, an XDG_RUNTIME_DIR of
// its own), with the real runc and crun. It checks the defaults for a
// non-root caller, the rootless config `tether bundle` writes, the
// container's life, the live-restore contract (manager and shim killed -9,
// the true exit status after adoption through the exit tracer, an honest
// unknown when a debugger holds the init) and the refusal of stats and
// update for a container without a cgroup of its own. The user, its id
// ranges, its folders, containers and shims go at cleanup, whatever the
// outcome.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/sweep"
	"github.com/tether-run/tether/internal/testutil"
	"golang.org/x/sys/unix"
)

// rlUser is an unprivileged test user and its folders.
type rlUser struct {
	t        *testing.T
	user     *testUser // nil until made
	name     string    // user.name, uid and gid, for short
	uid, gid int
	dir      string // fresh temp folder (0755, root's)
	bin      string // dir/bin: tether and tether-shim, readable by the user
	xdg      string // dir/xdg: its XDG_RUNTIME_DIR (0700, its own)
	work     string // dir/w: its working folder
	cgroupFD int    // when > 0, the CLI starts in this cgroup (CLONE_INTO_CGROUP)
}

// rlNewUser creates the user (newTestUser), its folders, and a cleanup
// that kills its containers and shims by recorded identity, then removes
// the user and the folders.
func rlNewUser(t *testing.T) *rlUser {
	t.Helper()
	testutil.RequireRuntime(t, "runc")
	dir, err := os.MkdirTemp("", "trl")
	if err != nil {
		t.Fatal(err)
	}
	u := &rlUser{t: t, dir: dir}
	t.Cleanup(u.cleanup)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u.user = newTestUser(t, "trl", filepath.Join(dir, "w"))
	u.name, u.uid, u.gid = u.user.name, u.user.uid, u.user.gid
	u.bin, u.xdg, u.work = filepath.Join(dir, "bin"), filepath.Join(dir, "xdg"), filepath.Join(dir, "w")
	for _, d := range []struct {
		path  string
		mode  os.FileMode
		owned bool
	}{{u.bin, 0o755, false}, {u.xdg, 0o700, true}, {u.work, 0o755, true}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if d.owned {
			if err := os.Chown(d.path, u.uid, u.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	src := testutil.BinDir(t) // may be a root-only temp folder: copy
	for _, name := range []string{"tether", "tether-shim"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(u.bin, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

func (u *rlUser) cleanup() {
	root := filepath.Join(u.xdg, "tether")
	ents, _ := os.ReadDir(root)
	for _, ent := range ents {
		if ent.IsDir() && ids.Match(ent.Name()) {
			u.tether(nil, "delete", "--force", ent.Name()) // as the user, through its runtime root
			sweep.KillRecorded(filepath.Join(root, ent.Name()))
		}
	}
	if u.user != nil {
		u.user.remove(u.t)
	}
	os.RemoveAll(u.dir)
}

// cmd is the CLI as the user, in its working folder, with env (KEY=value)
// on top of PATH, HOME and XDG_RUNTIME_DIR (an "XDG_RUNTIME_DIR=" entry
// unsets it).
func (u *rlUser) cmd(env []string, args ...string) *exec.Cmd {
	c := exec.Command(filepath.Join(u.bin, "tether"), args...)
	c.Dir = u.work
	base := []string{"PATH=" + u.bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + u.work}
	xdg := "XDG_RUNTIME_DIR=" + u.xdg
	for _, kv := range env {
		if strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			xdg = ""
			if kv != "XDG_RUNTIME_DIR=" {
				xdg = kv
			}
			continue
		}
		base = append(base, kv)
	}
	if xdg != "" {
		base = append(base, xdg)
	}
	c.Env = base
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
	if u.cgroupFD > 0 {
		c.SysProcAttr.UseCgroupFD, c.SysProcAttr.CgroupFD = true, u.cgroupFD
	}
	return c
}

// tether runs the CLI as the user and waits for it.
func (u *rlUser) tether(env []string, args ...string) testutil.Result {
	c := u.cmd(env, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		u.t.Fatalf("run tether %v: %v", args, err)
	}
	hang := time.AfterFunc(2*rlWait, func() { c.Process.Kill() }) // a hang fails the test, and cleanup still runs
	err := c.Wait()
	hang.Stop()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		u.t.Fatalf("run tether %v: %v", args, err)
	}
	return testutil.Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

func (u *rlUser) must(args ...string) string {
	u.t.Helper()
	r := u.tether(nil, args...)
	if r.Code != 0 {
		u.t.Fatalf("tether %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// state is `tether state ID` as a map.
func (u *rlUser) state(id string) map[string]any {
	u.t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(u.must("state", id)), &st); err != nil {
		u.t.Fatal(err)
	}
	return st
}

func rlInt(st map[string]any, key string) int {
	f, _ := st[key].(float64)
	return int(f)
}

// bundle writes, as the user, a bundle whose init waits for rootfs/tmp/go
// (made by the test), prints "bye" and exits code; it traps USR1 to
// print "got USR1".
func (u *rlUser) gatedBundle(name string, code int) string {
	u.t.Helper()
	u.must("bundle", name, "--", "sh", "-c",
		fmt.Sprintf(`trap "echo got USR1" USR1; echo hello; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo bye; exit %d`, code))
	return filepath.Join(u.work, name)
}

func rlRelease(t *testing.T, b string) {
	if err := os.WriteFile(filepath.Join(b, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rlWait bounds polls: a hang guard, not a speed assertion.
const rlWait = 30 * time.Second

// TestRootlessDefaults: the root of a non-root caller is
// $XDG_RUNTIME_DIR/tether, with the runtime's own root under it; without
// XDG_RUNTIME_DIR the CLI says so in one line naming the variable and
// --root; `tether bundle` writes a rootless config with the user's
// subordinate ranges (newuidmap is installed).
func TestRootlessDefaults(t *testing.T) {
	u := rlNewUser(t)
	b := u.gatedBundle("b", 0)
	var spec struct {
		Linux struct {
			UIDMappings []struct{ ContainerID, HostID, Size uint32 } `json:"uidMappings"`
			Namespaces  []struct{ Type string }                      `json:"namespaces"`
			Resources   any                                          `json:"resources"`
		} `json:"linux"`
		Mounts []struct {
			Destination, Type, Source string
			Options                   []string
		} `json:"mounts"`
	}
	raw, err := os.ReadFile(filepath.Join(b, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	m := spec.Linux.UIDMappings
	if len(m) < 2 || m[0].ContainerID != 0 || m[0].HostID != uint32(u.uid) || m[0].Size != 1 || m[1].ContainerID != 1 {
		t.Errorf("uid mappings %+v: want the user's uid %d as 0, then its subordinate range", m, u.uid)
	}
	var ns []string
	for _, n := range spec.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	if !strings.Contains(strings.Join(ns, ","), "user") || strings.Contains(strings.Join(ns, ","), "network") {
		t.Errorf("namespaces %v: want a user namespace and no network one", ns)
	}
	if spec.Linux.Resources != nil {
		t.Errorf("resources %v in a rootless config without a delegated cgroup", spec.Linux.Resources)
	}
	for _, mt := range spec.Mounts {
		if mt.Destination == "/sys" && (mt.Type == "sysfs" || !strings.Contains(strings.Join(mt.Options, ","), "rbind")) {
			t.Errorf("/sys mount %+v: want /sys bound read-only", mt)
		}
	}

	u.must("run", "-d", "--bundle", b, "d1")
	for _, p := range []string{"tether/d1/container.json", "tether/.oci/runc/d1"} {
		if _, err := os.Stat(filepath.Join(u.xdg, p)); err != nil {
			t.Errorf("%s under XDG_RUNTIME_DIR: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(u.xdg, "tether")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(u.uid) {
		t.Errorf("root not made by and for the user: %v", err)
	}
	rlRelease(t, b)
	if r := u.tether(nil, "wait", "d1"); r.Code != 0 {
		t.Errorf("wait: %d %s", r.Code, r.Stderr)
	}
	u.must("delete", "d1")

	r := u.tether(nil, "run", "--memory", "32m", "lim", "--", "true")
	if line := strings.TrimSpace(r.Stderr); r.Code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, "delegated cgroup") {
		t.Errorf("run --memory without a delegated cgroup: exit %d, stderr %q: want one line naming the delegated cgroup", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(u.xdg, "tether", "lim")); !os.IsNotExist(err) {
		t.Errorf("refused run left its folder: %v", err)
	}

	r = u.tether([]string{"XDG_RUNTIME_DIR="}, "list")
	line := strings.TrimSpace(r.Stderr)
	if r.Code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, "XDG_RUNTIME_DIR") || !strings.Contains(line, "--root") {
		t.Errorf("list without XDG_RUNTIME_DIR: exit %d, stderr %q: want one line naming XDG_RUNTIME_DIR and --root", r.Code, r.Stderr)
	}
}

// TestRootlessLifecycle: with runc and crun, the rootless config of
// `tether bundle` runs: run (exit code and output), run -d, logs, list,
// exec, attach, kill, wait, top, delete; stats and update refuse in one
// line, the container having no cgroup of its own.
func TestRootlessLifecycle(t *testing.T) {
	u := rlNewUser(t)
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			testutil.RequireRuntime(t, rt)
			parent := u.t
			u.t = t
			defer func() { u.t = parent }()
			rtf := "--runtime=" + rt
			u.must("bundle", "fg-"+rt, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
			r := u.tether(nil, rtf, "run", "--bundle", "fg-"+rt, "fg-"+rt)
			if r.Code != 3 || r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err\n") {
				t.Errorf("run: exit %d, stdout %q, stderr %q: want 3, out, err", r.Code, r.Stdout, r.Stderr)
			}
			u.must("delete", "fg-"+rt)

			id := "lc-" + rt
			b := u.gatedBundle("b-"+rt, 4)
			u.must(rtf, "run", "-d", "--bundle", b, id)
			testutil.Eventually(t, rlWait, "hello in the log", func() bool { return strings.Contains(u.must("logs", id), "hello") })
			if out := u.must("list"); !strings.Contains(out, id) || !strings.Contains(out, "running") {
				t.Errorf("list: %q", out)
			}
			if out := u.must("exec", id, "--", "id", "-u"); out != "0\n" {
				t.Errorf("exec id -u: %q, want 0 (the user mapped to root)", out)
			}
			if r := u.tether(nil, "exec", id, "--", "sh", "-c", "exit 7"); r.Code != 7 {
				t.Errorf("exec exit: %d, want 7", r.Code)
			}
			st := u.state(id)
			init := rlInt(st, "pid")
			r = u.tether(nil, "top", id)
			if r.Code != 0 || !strings.Contains(r.Stdout, strconv.Itoa(init)) || !strings.Contains(r.Stdout, " root ") {
				t.Errorf("top: exit %d, %q %q: want init %d listed, its user root (the user namespace's 0)", r.Code, r.Stdout, r.Stderr, init)
			}
			for _, args := range [][]string{{"stats", "--no-stream", id}, {"update", "--pids-limit", "10", id}, {"update", "--memory", "64m", id}} {
				r := u.tether(nil, args...)
				line := strings.TrimSpace(r.Stderr)
				if r.Code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, "no cgroup of its own") || !strings.Contains(line, "delegated") {
					t.Errorf("%v: exit %d, stderr %q: want one line saying there is no cgroup and how to get one", args, r.Code, r.Stderr)
				}
			}

			att := u.cmd(nil, "attach", id)
			var aout bytes.Buffer
			att.Stdout, att.Stderr = &aout, io.Discard
			if err := att.Start(); err != nil {
				t.Fatal(err)
			}
			defer att.Process.Kill()
			time.Sleep(300 * time.Millisecond) // let attach connect; a late one still returns the status
			rlRelease(t, b)
			err := att.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 4 {
				t.Errorf("attach: %v, want exit 4", err)
			}
			if r := u.tether(nil, "wait", id); r.Code != 4 || strings.TrimSpace(r.Stdout) != "4" {
				t.Errorf("wait: exit %d, %q, want 4", r.Code, r.Stdout)
			}
			if !strings.Contains(u.must("logs", id), "bye") {
				t.Errorf("logs lack bye")
			}
			u.must("delete", id)

			id = "k-" + rt
			u.must("bundle", "kb-"+rt, "--", "sleep", "1000")
			u.must(rtf, "run", "-d", "--bundle", "kb-"+rt, id)
			u.must("kill", "--signal", "KILL", id) // sleep as pid 1 ignores TERM
			if r := u.tether(nil, "wait", id); r.Code != 137 {
				t.Errorf("wait after kill: %d, want 137", r.Code)
			}
			u.must("delete", id)
		})
	}
}

// TestRootlessRecovery: the live-restore contract for an unprivileged
// user. A manager killed -9 during wait: the next wait has the status. A
// shim killed -9: the next command adopts the container, signals still
// reach it (through the tracer), and once it exits 5 the true 5 is
// reported, and the true 3 of an exec'd process adopted with it: the exit
// tracer learned them, though rootless has no process events connector,
// and an in-place upgrade of the adopting shim in between keeps them. A debugger that already traces init: the status is
// an honest unknown with a reason, never a made-up code.
func TestRootlessRecovery(t *testing.T) {
	u := rlNewUser(t)

	b := u.gatedBundle("mw", 6)
	u.must("run", "-d", "--bundle", b, "mw")
	w := u.cmd(nil, "wait", "mw")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the manager is waiting (or about to: either way it dies)
	w.Process.Kill()
	w.Wait()
	rlRelease(t, b)
	if r := u.tether(nil, "wait", "mw"); r.Code != 6 {
		t.Errorf("wait after the manager's kill -9: exit %d (%s), want 6", r.Code, r.Stderr)
	}
	u.must("delete", "mw")

	b = u.gatedBundle("sk", 5)
	u.must("run", "-d", "--bundle", b, "sk")
	u.must("exec", "-d", "--exec-id", "e1", "sk", "--", "sh", "-c", "while [ ! -e /tmp/ex ]; do sleep 0.05; done; exit 3")
	st := u.state("sk")
	shim, init := rlInt(st, "shim_pid"), rlInt(st, "pid")
	rlKillShim(t, shim)
	st = u.state("sk") // adopts it
	if st["status"] != "running" || rlInt(st, "shim_pid") == shim || st["adopted_at"] == nil {
		t.Fatalf("after the shim's kill -9: %v, want running under a new shim", st)
	}
	if tp := rlTracerPid(t, init); tp == 0 {
		t.Errorf("adopted init %d is not traced: no exit tracer", init)
	}
	u.must("kill", "--signal", "USR1", "sk")
	testutil.Eventually(t, rlWait, "got USR1 in the log", func() bool { return strings.Contains(u.must("logs", "sk"), "got USR1") })
	u.must("upgrade", "sk") // in place: the new image takes the tracer's record
	if err := os.WriteFile(filepath.Join(b, "rootfs", "tmp", "ex"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := u.tether(nil, "wait", "--exec-id", "e1", "sk"); r.Code != 3 {
		t.Errorf("adopted exec'd process: wait exit %d (%s), want its true status 3", r.Code, r.Stderr)
	}
	rlRelease(t, b)
	r := u.tether(nil, "wait", "sk")
	st = u.state("sk")
	if r.Code != 5 || rlInt(st, "exit_status") != 5 || st["reason"] != nil {
		t.Errorf("after adoption: wait exit %d, state %v: want the true status 5, no reason", r.Code, st)
	}
	u.must("delete", "sk")

	b = u.gatedBundle("dbg", 5)
	u.must("run", "-d", "--bundle", b, "dbg")
	st = u.state("dbg")
	shim, init = rlInt(st, "shim_pid"), rlInt(st, "pid")
	dbg := rlDebugger(t, init)
	rlKillShim(t, shim)
	st = u.state("dbg")
	if st["status"] != "running" {
		t.Fatalf("after the shim's kill -9 under a debugger: %v, want running", st)
	}
	rlRelease(t, b)
	<-dbg // the debugger saw the exit and let go
	r = u.tether(nil, "wait", "dbg")
	st = u.state("dbg")
	reason, _ := st["reason"].(string)
	if r.Code == 5 || r.Code == 0 || rlInt(st, "exit_status") != 255 || !strings.Contains(reason, "not observable") {
		t.Errorf("init traced by a debugger: wait exit %d, state %v: want the unknown status 255 with a reason", r.Code, st)
	}
	u.must("delete", "dbg")
}

// rlKillShim kills the shim by its recorded pid and waits until it has
// fully exited (all its threads: its socket closes with the last one).
func rlKillShim(t *testing.T, pid int) {
	t.Helper()
	id, err := proc.Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !id.WaitExit(rlWait) {
		t.Fatalf("shim %d still there %v after SIGKILL", pid, rlWait)
	}
}

func rlTracerPid(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// rlDebugger seizes pid as a debugger would, from a thread of this test,
// passes its signals on and lets it go at its exit: the returned channel
// closes then.
func rlDebugger(t *testing.T, pid int) <-chan struct{} {
	done := make(chan struct{})
	seized := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // stays locked: the thread ends with the goroutine
		defer close(done)
		if err := unix.PtraceSeize(pid); err != nil {
			seized <- err
			return
		}
		seized <- nil
		for end := time.Now().Add(rlWait); time.Now().Before(end); {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			if ws.Exited() || ws.Signaled() {
				return
			}
			sig := 0
			if ws.Stopped() && int(ws>>16) == 0 {
				sig = int(ws.StopSignal())
			}
			unix.PtraceCont(pid, sig)
		}
	}()
	if err := <-seized; err != nil {
		t.Fatalf("seize init %d: %v", pid, err)
	}
	return done
}

// TestRootlessCgroupDelegation: on a cgroup v2 host, a user that owns a
// delegated subtree (chowned to it as systemd's Delegate=yes does) gets a
// rootless config with resources, and its container a cgroup of its own
// in that subtree: stats, update (memory.max changes) and an OOM record
// work as for root. A cgroup v1 host cannot delegate: the test skips
// there, and hack/test-cgroup2.sh -ci (CI) runs it in the cgroup v2 VM.
func TestRootlessCgroupDelegation(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("needs a cgroup v2 host (delegation is v2 only): hack/test-cgroup2.sh -ci runs it in the cgroup v2 VM")
	}
	var cg string
	t.Cleanup(func() { // after the user's cleanup (registered later, run first) ended its containers
		if cg == "" {
			return
		}
		for end := time.Now().Add(rlWait); ; time.Sleep(50 * time.Millisecond) {
			ents, _ := os.ReadDir(cg)
			for _, e := range ents {
				if e.IsDir() {
					syscall.Rmdir(filepath.Join(cg, e.Name()))
				}
			}
			if err := syscall.Rmdir(cg); err == nil || os.IsNotExist(err) || time.Now().After(end) {
				if err != nil && !os.IsNotExist(err) {
					t.Errorf("remove cgroup %s: %v", cg, err)
				}
				return
			}
		}
	})
	u := rlNewUser(t)
	if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory +pids"), 0); err != nil {
		t.Fatalf("enable memory and pids at the cgroup root: %v", err)
	}
	cg = filepath.Join("/sys/fs/cgroup", u.name)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(cg, "cli")
	if err := os.Mkdir(cli, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{cg, cli} { // what systemd chowns for Delegate=yes
		for _, f := range []string{"", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"} {
			if err := os.Chown(filepath.Join(dir, f), u.uid, u.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	fd, err := unix.Open(cli, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	u.cgroupFD = fd

	u.must("run", "-d", "--memory", "64m", "st", "--", "sleep", "1000")
	if r := u.tether(nil, "stats", "--no-stream", "st"); r.Code != 0 || !strings.Contains(r.Stdout, "st") {
		t.Errorf("stats: exit %d, %q %q", r.Code, r.Stdout, r.Stderr)
	}
	max := filepath.Join(cg, "st", "memory.max")
	if b, err := os.ReadFile(max); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Fatalf("%s: %q %v: want the container's own cgroup in the delegated subtree, limited to 64m", max, b, err)
	}
	u.must("update", "--memory", "96m", "st")
	if b, err := os.ReadFile(max); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(96<<20) {
		t.Errorf("%s after update --memory 96m: %q %v", max, b, err)
	}
	u.must("kill", "--signal", "KILL", "st")
	u.tether(nil, "wait", "st")
	u.must("delete", "st")

	u.must("run", "-d", "--memory", "16m", "oom", "--", "sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done")
	if r := u.tether(nil, "wait", "oom"); r.Code != 137 {
		t.Errorf("wait: exit %d (%s), want 137", r.Code, r.Stderr)
	}
	if st := u.state("oom"); st["oom_killed"] != true {
		t.Errorf("state %v: want oom_killed", st)
	}
	u.must("delete", "oom")
}
