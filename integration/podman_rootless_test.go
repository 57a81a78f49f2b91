package integration

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
)

// rootlessPodman is a private podman run by an unprivileged user made for
// the test: its own storage, run root (also XDG_RUNTIME_DIR), HOME, tmp
// dirs and containers.conf whose conmon_path is a copy of tether-conmon
// the user can execute. Containers get no network (--network none).
type rootlessPodman struct {
	t        *testing.T
	tu       *testUser // nil until made
	user     string    // tu.name, uid and gid, for short
	uid, gid int
	dir      string // storage, configuration, HOME, the monitor's copy
	run      string // run root, XDG_RUNTIME_DIR, libpod's tmp dir
	rootfs   string
	mon      string
	env      []string
}

// newRootlessPodman makes the user (with subordinate id ranges) and the
// private podman, registers the cleanup, and checks that podman runs
// rootless with tether-conmon: `podman info` names it and says rootless,
// and the monitor of a running container executes it as the user.
func newRootlessPodman(t *testing.T) *rootlessPodman {
	t.Helper()
	testutil.RequireRoot(t)
	for _, c := range []string{"podman", "runc", "newuidmap", "newgidmap", "useradd", "userdel"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is missing: make deps (hack/deps.sh) installs podman and uidmap", c)
		}
	}
	p := &rootlessPodman{t: t}
	t.Cleanup(p.cleanup)
	var err error
	if p.dir, err = os.MkdirTemp("/var/tmp", "tpr"); err != nil {
		t.Fatal(err)
	}
	if p.run, err = os.MkdirTemp("/run", "tpr"); err != nil { // short: socket paths
		t.Fatal(err)
	}
	p.tu = newTestUser(t, "tpr", filepath.Join(p.dir, "home"))
	p.user, p.uid, p.gid = p.tu.name, p.tu.uid, p.tu.gid
	p.rootfs = filepath.Join(p.dir, "b", "rootfs")
	if err := bundle.Write(filepath.Join(p.dir, "b"), bundle.Options{}); err != nil {
		t.Fatal(err)
	}
	p.mon = filepath.Join(p.dir, "bin", "tether-conmon")
	src, err := os.ReadFile(filepath.Join(testutil.BinDir(t), "tether-conmon"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "home", "net"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p.mon, src, 0o755); err != nil {
		t.Fatal(err)
	}
	p.writeConfig()
	// The user owns all of it, as after its own `podman import`.
	for _, d := range []string{p.dir, p.run} {
		if err := filepath.WalkDir(d, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, p.uid, p.gid)
		}); err != nil {
			t.Fatal(err)
		}
	}
	info := strings.TrimSpace(p.must("info", "--format", "{{.Host.Conmon.Path}} {{.Host.Security.Rootless}}"))
	if info != p.mon+" true" {
		t.Fatalf("podman info says monitor and rootless %q, want %q", info, p.mon+" true")
	}
	p.must("run", "-d", "--name", "probe", "--rootfs", p.rootfs, "sleep", "60")
	p.checkMonitor("probe")
	p.must("rm", "-f", "-t", "0", "probe")
	return p
}

func (p *rootlessPodman) writeConfig() {
	files := map[string]string{
		"storage.conf": fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\nrootless_storage_path = %q\n",
			filepath.Join(p.dir, "storage"), filepath.Join(p.run, "storage"), filepath.Join(p.dir, "storage")),
		"containers.conf": fmt.Sprintf(`[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
conmon_path = [%q]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = %q
`, p.mon, filepath.Join(p.run, "events.log"), p.tmpDir(), filepath.Join(p.dir, "net")),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(body), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"USER=" + p.user, "LOGNAME=" + p.user, "HOME=" + filepath.Join(p.dir, "home"),
		"XDG_RUNTIME_DIR=" + p.run, "TMPDIR=" + p.dir,
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(p.dir, "storage.conf"),
		"CONTAINERS_CONF=" + filepath.Join(p.dir, "containers.conf")}
}

// tmpDir is libpod's tmp dir, where rootless podman also keeps its pause
// process's pid; the monitors' store root is beside its exits folder.
func (p *rootlessPodman) tmpDir() string    { return filepath.Join(p.run, "libpod", "tmp") }
func (p *rootlessPodman) storeRoot() string { return filepath.Join(p.tmpDir(), "tether-conmon") }
func (p *rootlessPodman) cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid), Groups: []uint32{}}
}

// command is podman run as the user.
func (p *rootlessPodman) command(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "podman", args...)
	c.Env = p.env
	c.Dir = p.dir
	c.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred()}
	return c
}

// podman runs podman as the user; it returns stdout, stderr, exit code.
func (p *rootlessPodman) podman(args ...string) (string, string, int) {
	p.t.Helper()
	return p.podmanIn("", args...)
}

// podmanIn is podman with stdin.
func (p *rootlessPodman) podmanIn(stdin string, args ...string) (string, string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runCaptured(p.t, p.command(ctx, args...), stdin)
}

func (p *rootlessPodman) must(args ...string) string {
	p.t.Helper()
	out, errs, code := p.podman(args...)
	if code != 0 {
		p.t.Fatalf("podman %v: exit %d: %s", args, code, errs)
	}
	return out
}

// script runs a podman command line as the user under script(1), so
// podman has a terminal; it returns the output and the exit code.
func (p *rootlessPodman) script(cmdline string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "script", "-qec", cmdline, "/dev/null")
	c.Env, c.Dir = p.env, p.dir
	c.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred()}
	return runScript(p.t, c)
}

// checkMonitor checks that the monitor of a running container executes
// tether-conmon as the user; it returns its pid.
func (p *rootlessPodman) checkMonitor(name string) int {
	p.t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(p.must("inspect", "--format", "{{.State.ConmonPid}}", name)))
	if err != nil || pid <= 0 {
		p.t.Fatalf("no monitor pid for %s: %v", name, err)
	}
	if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); exe != p.mon {
		p.t.Fatalf("the monitor of %s (pid %d) runs %q, not %s", name, pid, exe, p.mon)
	}
	if uid := procUID(pid); uid != p.uid {
		p.t.Fatalf("the monitor of %s (pid %d) runs as uid %d, not the user's %d", name, pid, uid, p.uid)
	}
	return pid
}

// procUID is the real uid of a process (-1 when it is gone).
func procUID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

// procField is a field of /proc/PID/status ("" when absent).
func procField(pid int, name string) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tracedBy reports whether a thread of process w traces pid (TracerPid
// names the tracing thread).
func tracedBy(pid, w int) bool {
	t := procField(pid, "TracerPid")
	if t == "" || t == "0" {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(w) + "/task/" + t)
	return err == nil
}

// storeFolders lists the container folders in the monitors' store root.
func (p *rootlessPodman) storeFolders() []string { return podmanStoreFolders(p.storeRoot()) }

// watcherPid is the watcher's recorded pid, checked to run tether-conmon.
func (p *rootlessPodman) watcherPid() int {
	p.t.Helper()
	return podmanWatcherPid(p.t, p.storeRoot(), p.mon)
}

// cleanup removes every container, kills the monitors, the watcher and
// podman's pause process by their recorded pids (each checked to run the
// expected program as the user), then any process left of the user made
// for this test (all of them belong to the test), undoes mounts, removes
// the folders as root (the storage holds files of subordinate ids) and
// deletes the user and its ranges.
func (p *rootlessPodman) cleanup() {
	if p.tu == nil { // only the folders were made
		for _, d := range []string{p.dir, p.run} {
			if d != "" {
				os.RemoveAll(d)
			}
		}
		return
	}
	if p.env != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p.command(ctx, "rm", "-af", "-t", "0").Run()
		cancel()
		for _, id := range p.storeFolders() {
			if b, err := os.ReadFile(filepath.Join(p.storeRoot(), id, "shim.pid")); err == nil {
				for _, f := range strings.Split(string(b), `"pid":`)[1:] {
					if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(f, ",", 2)[0])); err == nil {
						p.killIf(pid, p.mon)
					}
				}
			}
		}
		if b, err := os.ReadFile(filepath.Join(p.storeRoot(), "watcher.pid")); err == nil {
			if pid, err := strconv.Atoi(string(b)); err == nil {
				p.killIf(pid, p.mon)
			}
		}
		if b, err := os.ReadFile(filepath.Join(p.tmpDir(), "pause.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				podman, _ := exec.LookPath("podman")
				podman, _ = filepath.EvalSymlinks(podman)
				p.killIf(pid, podman)
			}
		}
	}
	// What is still left of the user's (a container's init whose
	// monitor was killed, say): the user is this test's alone.
	for i := 0; i < 50; i++ {
		left := p.userProcesses()
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mounts), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 4 && p.dir != "" && (strings.HasPrefix(f[4], p.dir+"/") || p.run != "" && strings.HasPrefix(f[4], p.run+"/")) {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	for _, d := range []string{p.dir, p.run} {
		if d != "" {
			if err := os.RemoveAll(d); err != nil {
				p.t.Errorf("cleanup: %v", err)
			}
		}
	}
	p.tu.remove(p.t)
}

// killIf kills pid when it runs exe as the user (never anything else).
func (p *rootlessPodman) killIf(pid int, exe string) {
	if got, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); got == exe && procUID(pid) == p.uid {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// userProcesses lists the live processes whose real uid is the user's or
// one of its subordinate ids' (the containers' other users).
func (p *rootlessPodman) userProcesses() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if procUID(pid) == p.uid && !strings.HasPrefix(procField(pid, "State"), "Z") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPodmanRootless_Isolated drives rootless podman (an unprivileged
// user made for the test, Debian's uidmap for its subordinate ids, no
// network, cgroupfs: on cgroup v1 without cgroup limits) with
// tether-conmon as its monitor, through what the podman tests cover that
// applies rootless.
func TestPodmanRootless_Isolated(t *testing.T) {
	p := newRootlessPodman(t)
	rootfs := p.rootfs
	t.Run("run --rm: exit code, stdout and stderr apart", func(t *testing.T) {
		out, errs, code := p.podman("run", "--rm", "--rootfs", rootfs, "sh", "-c", "echo hi; echo oops >&2; exit 4")
		if code != 4 || out != "hi\n" || !strings.HasSuffix(errs, "oops\n") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 4, \"hi\\n\", ending \"oops\\n\"", code, out, errs)
		}
	})
	t.Run("run -d, ps, logs, stop -t of a TERM-ignoring container, wait, rm", func(t *testing.T) {
		p.must("run", "-d", "--name", "stopme", "--rootfs", rootfs, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
		p.checkMonitor("stopme")
		if st := p.must("ps", "--filter", "name=stopme", "--format", "{{.Status}}"); !strings.HasPrefix(st, "Up") {
			t.Fatalf("ps says %q", st)
		}
		testutil.Eventually(t, 10*time.Second, "ready in the logs", func() bool {
			return p.must("logs", "stopme") == "ready\n"
		})
		podmanStopKilled(t, p.must, "stopme")
	})
	t.Run("exec codes, exec -d", func(t *testing.T) {
		p.must("run", "-d", "--name", "ex", "--rootfs", rootfs, "sleep", "600")
		for _, tc := range []struct {
			args []string
			code int
			out  string
		}{
			{[]string{"sh", "-c", "echo in; exit 3"}, 3, "in\n"},
			{[]string{"nosuchcommand"}, 127, ""},
			{[]string{"/etc"}, 126, ""},
		} {
			out, _, code := p.podman(append([]string{"exec", "ex"}, tc.args...)...)
			if code != tc.code || out != tc.out {
				t.Errorf("exec %v: exit %d, %q; want %d, %q", tc.args, code, out, tc.code, tc.out)
			}
		}
		p.must("exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d-ex")
		testutil.Eventually(t, 10*time.Second, "the detached exec's file", func() bool {
			out, _, _ := p.podman("exec", "ex", "cat", "/tmp/d-ex")
			return out == "detached\n"
		})
		p.must("rm", "-f", "-t", "0", "ex")
	})
	t.Run("logs byte-exact per stream, logs -f", func(t *testing.T) {
		prog := `i=1; while [ $i -le 4000 ]; do echo "line $i"; i=$((i+1)); done; ` +
			`head -c 20480 /dev/zero | tr '\0' x; echo; echo to-stderr >&2; printf 'no newline'`
		p.must("run", "--name", "logs", "--rootfs", rootfs, "sh", "-c", prog)
		var want strings.Builder
		for i := 1; i <= 4000; i++ {
			fmt.Fprintf(&want, "line %d\n", i)
		}
		want.WriteString(strings.Repeat("x", 20480) + "\nno newline")
		out, errs, code := p.podman("logs", "logs")
		if code != 0 || out != want.String() || errs != "to-stderr\n" {
			t.Fatalf("logs: exit %d, stdout %d bytes (want %d, equal %v), stderr %q", code, len(out), want.Len(), out == want.String(), errs)
		}
		p.must("rm", "logs")
		p.must("run", "-d", "--name", "follow", "--rootfs", rootfs, "sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done")
		out, _, code = p.podman("logs", "-f", "follow")
		if code != 0 || out != "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n" {
			t.Fatalf("logs -f: exit %d, %q", code, out)
		}
		p.must("rm", "follow")
	})
	t.Run("run -i with stdin; run -it and exec -it under script", func(t *testing.T) {
		out, _, code := p.podmanIn("hello stdin\nsecond\n", "run", "--rm", "-i", "--rootfs", rootfs, "sh", "-c", "cat; echo done")
		if code != 0 || out != "hello stdin\nsecond\ndone\n" {
			t.Fatalf("run -i: exit %d, %q", code, out)
		}
		out, code = p.script("podman run --rm -it --rootfs " + rootfs + " sh -c 'tty; exit 5'")
		if code != 5 || !strings.Contains(out, "/dev/pts/0") {
			t.Fatalf("run -it: exit %d, %q", code, out)
		}
		p.must("run", "-d", "--name", "tty", "--rootfs", rootfs, "sleep", "600")
		out, code = p.script("podman exec -it tty sh -c 'tty; exit 6'")
		if code != 6 || !strings.Contains(out, "/dev/pts/") {
			t.Fatalf("exec -it: exit %d, %q", code, out)
		}
		p.must("rm", "-f", "-t", "0", "tty")
	})
	t.Run("no descriptor leaks into the container", func(t *testing.T) {
		podmanNoLeakedFds(t, p.must, rootfs)
	})
	t.Run("a create failure leaves nothing", func(t *testing.T) {
		_, errs, code := p.podman("run", "--rm", "--name", "bad", "--rootfs", rootfs, "/no/such/binary")
		if code == 0 || !strings.Contains(errs, "no such file") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		if out := p.must("ps", "-aq", "--filter", "name=bad"); out != "" {
			t.Fatalf("container left: %q", out)
		}
		// earlier subtests' monitors may still run their exit command
		testutil.Eventually(t, 10*time.Second, "no monitor folder left in "+p.storeRoot(), func() bool {
			return len(p.storeFolders()) == 0
		})
	})
	t.Run("signals reach the traced init: kill -s, STOP and CONT", func(t *testing.T) {
		p.must("run", "-d", "--name", "sig", "--rootfs", rootfs, "sh", "-c",
			`trap "echo got USR1" USR1; trap "echo got HUP" HUP; trap "echo got TERM; exit 3" TERM; echo ready; while :; do sleep 0.05; done`)
		p.checkMonitor("sig")
		pid, _ := strconv.Atoi(strings.TrimSpace(p.must("inspect", "--format", "{{.State.Pid}}", "sig")))
		w := p.watcherPid()
		testutil.Eventually(t, 10*time.Second, "the watcher to trace the container's init", func() bool {
			return tracedBy(pid, w)
		})
		want := "ready\n"
		for _, s := range []string{"USR1", "STOP", "CONT", "HUP"} {
			p.must("kill", "-s", s, "sig")
			switch s {
			case "STOP":
				testutil.Eventually(t, 10*time.Second, "the init to stop", func() bool {
					return strings.HasPrefix(procField(pid, "State"), "T") || strings.HasPrefix(procField(pid, "State"), "t")
				})
				continue
			case "CONT":
				continue
			}
			want += "got " + s + "\n"
			testutil.Eventually(t, 10*time.Second, "the container to handle "+s, func() bool {
				return p.must("logs", "sig") == want
			})
		}
		p.must("stop", "-t", "10", "sig")
		if code := strings.TrimSpace(p.must("wait", "sig")); code != "3" {
			t.Fatalf("wait says %s, want 3 (the TERM trap's exit)", code)
		}
		p.must("rm", "sig")
	})
	t.Run("monitor killed -9: adopted, true exit status, later output logged", func(t *testing.T) {
		p.must("run", "-d", "--name", "adopt", "--rootfs", rootfs, "sh", "-c",
			"echo before; while [ ! -e /tmp/go-adopt ]; do sleep 0.1; done; echo after; echo after-err >&2; exit 7")
		mon := p.checkMonitor("adopt")
		pid, _ := strconv.Atoi(strings.TrimSpace(p.must("inspect", "--format", "{{.State.Pid}}", "adopt")))
		// Rootless there is no process events connector: the watcher
		// traces the init instead, and is its tracer before the kill.
		w := p.watcherPid()
		testutil.Eventually(t, 10*time.Second, "the watcher to trace the container's init", func() bool {
			return tracedBy(pid, w)
		})
		podmanKillMonitor(t, p.storeRoot(), mon)
		p.must("exec", "adopt", "touch", "/tmp/go-adopt")
		podmanExpectExited7(t, p.must, p.storeFolders, "adopt")
		out, errs, _ := p.podman("logs", "adopt")
		if out != "before\nafter\n" || errs != "after-err\n" {
			t.Fatalf("logs: %q, %q", out, errs)
		}
		os.Remove(filepath.Join(rootfs, "tmp", "go-adopt"))
		p.must("start", "adopt")
		p.must("exec", "adopt", "touch", "/tmp/go-adopt")
		if code := strings.TrimSpace(p.must("wait", "adopt")); code != "7" {
			t.Fatalf("wait after a new start says %s, want 7", code)
		}
		p.must("rm", "adopt")
	})
	t.Run("monitor killed -9, the container ends before an adopter runs: the tracer's status", func(t *testing.T) {
		// The watcher is stopped so that no adopter starts: the init
		// ends while no monitor runs. A stopped tracer also holds the
		// init's signals (each stops the init until the tracer resumes
		// it), so the init waits for its flag without a child: busybox's
		// sh reads its builtin read from a fifo.
		fifo := filepath.Join(rootfs, "tmp", "lost-fifo")
		if err := syscall.Mkfifo(fifo, 0o666); err != nil {
			t.Fatal(err)
		}
		os.Lchown(fifo, p.uid, p.gid)
		defer os.Remove(fifo)
		p.must("run", "-d", "--name", "lost", "--rootfs", rootfs, "sh", "-c", "read x < /tmp/lost-fifo; exit 7")
		mon := p.checkMonitor("lost")
		pid, _ := strconv.Atoi(strings.TrimSpace(p.must("inspect", "--format", "{{.State.Pid}}", "lost")))
		w := p.watcherPid()
		testutil.Eventually(t, 10*time.Second, "the watcher to trace the container's init", func() bool {
			return tracedBy(pid, w)
		})
		if err := syscall.Kill(w, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := true
		defer func() {
			if stopped {
				syscall.Kill(w, syscall.SIGCONT)
			}
		}()
		if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// as root, not through podman exec (that needs no monitor but
		// takes the container's lock a killed monitor may not hold)
		fl, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fl.Write([]byte("go\n"))
		fl.Close()
		testutil.Eventually(t, 10*time.Second, "the container's init to end", func() bool {
			st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			return err != nil || strings.Contains(string(st), ") Z ") || strings.Contains(string(st), ") X ")
		})
		syscall.Kill(w, syscall.SIGCONT)
		stopped = false
		podmanExpectExited7(t, p.must, p.storeFolders, "lost")
		p.must("rm", "lost")
	})
}
