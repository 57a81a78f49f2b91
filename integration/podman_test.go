package integration

import (
	"bytes"
	"context"
	"fmt"
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

// podmanEnv is a private podman (its own storage, run root, tmp dir and
// containers.conf whose conmon_path is bin/tether-conmon) for one test.
type podmanEnv struct {
	t      *testing.T
	dir    string // storage and configuration
	run    string // run root and libpod tmp dir (short: socket paths)
	rootfs string
	mon    string
	env    []string
}

// newPodman makes the private podman and registers its cleanup, then
// checks that podman really runs tether-conmon: `podman info` names it
// and the monitor of a running container executes it.
func newPodman(t *testing.T) *podmanEnv {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("TETHER_REQUIRE_ROOT_TESTS") != "" {
			t.Fatal("podman is not installed: make deps (hack/deps.sh) installs it")
		}
		t.Skip("podman is not installed: apt-get install podman")
	}
	mon, err := filepath.Abs(filepath.Join(testutil.BinDir(t), "tether-conmon"))
	if err != nil {
		t.Fatal(err)
	}
	p := &podmanEnv{t: t, dir: t.TempDir(), mon: mon}
	if p.run, err = os.MkdirTemp("/run", "tpm"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cleanup)
	p.rootfs = filepath.Join(p.dir, "b", "rootfs")
	if err := bundle.Write(filepath.Join(p.dir, "b"), bundle.Options{}); err != nil {
		t.Fatal(err)
	}
	p.writeConfig()
	if got := strings.TrimSpace(p.must("info", "--format", "{{.Host.Conmon.Path}}")); got != mon {
		t.Fatalf("podman uses the monitor %q, not %s", got, mon)
	}
	p.must("run", "-d", "--name", "probe", "--rootfs", p.rootfs, "sleep", "60")
	p.checkMonitor("probe")
	p.must("rm", "-f", "-t", "0", "probe")
	return p
}

func (p *podmanEnv) writeConfig() {
	files := map[string]string{
		"storage.conf": fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
			filepath.Join(p.dir, "storage"), filepath.Join(p.run, "storage")),
		"containers.conf": fmt.Sprintf(`[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
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
`, p.mon, filepath.Join(p.run, "events.log"), filepath.Join(p.run, "libpod"), filepath.Join(p.dir, "net")),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(body), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.env = append(os.Environ(), "CONTAINERS_STORAGE_CONF="+filepath.Join(p.dir, "storage.conf"),
		"CONTAINERS_CONF="+filepath.Join(p.dir, "containers.conf"), "TMPDIR="+p.dir)
}

// cleanup removes every container, ends the watcher by its recorded pid
// (after checking it runs tether-conmon), undoes podman's mounts and
// removes the folders.
func (p *podmanEnv) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "podman", "rm", "-af", "-t", "0")
	c.Env = p.env
	c.Run()
	reg := p.storeRoot()
	for _, id := range p.storeFolders() { // monitors and adopters still serving one
		if b, err := os.ReadFile(filepath.Join(reg, id, "shim.pid")); err == nil {
			for _, f := range strings.Split(string(b), `"pid":`)[1:] {
				if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(f, ",", 2)[0])); err == nil {
					p.killIfMonitor(pid)
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(reg, "watcher.pid")); err == nil {
		if pid, err := strconv.Atoi(string(b)); err == nil {
			p.killIfMonitor(pid)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mounts), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 4 && (strings.HasPrefix(f[4], p.dir+"/") || strings.HasPrefix(f[4], p.run+"/")) {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(p.run)
}

// storeRoot is the monitors' store root (beside podman's exit folder).
func (p *podmanEnv) storeRoot() string { return filepath.Join(p.run, "libpod", "tether-conmon") }

// storeFolders lists the container folders in the monitors' store root.
func (p *podmanEnv) storeFolders() []string { return podmanStoreFolders(p.storeRoot()) }

// podmanStoreFolders lists the container folders in a store root of
// tether-conmon (rootful or rootless).
func podmanStoreFolders(root string) []string {
	ents, _ := os.ReadDir(root)
	var ids []string
	for _, e := range ents {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// podmanWatcherPid is the watcher's recorded pid in store root, checked
// to run mon (tether-conmon). The monitor starts it after podman's run
// returned, so it is waited for.
func podmanWatcherPid(t *testing.T, root, mon string) int {
	t.Helper()
	pid := 0
	testutil.Eventually(t, 10*time.Second, "a watcher running tether-conmon", func() bool {
		b, err := os.ReadFile(filepath.Join(root, "watcher.pid"))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(string(b))
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		return err == nil && exe == mon
	})
	return pid
}

// podmanKillMonitor kills a container's monitor with SIGKILL and waits
// for its death, then for a new monitor (its pid in the store folder's
// shim.pid, alive) to adopt the container. Output the container writes
// while no monitor runs waits in the pipe only once the watcher holds its
// read ends, and the adopter is waited for so the log's order is the
// container's: the caller lets the container write again only after.
func podmanKillMonitor(t *testing.T, root string, mon int) {
	t.Helper()
	if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the monitor to die", func() bool {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(mon) + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	})
	testutil.Eventually(t, 20*time.Second, "a new monitor to adopt the container", func() bool {
		for _, f := range podmanStoreFolders(root) {
			id, err := readPid(filepath.Join(root, f), shimPidFile)
			if err == nil && id.Pid != mon && id.Alive() {
				return true
			}
		}
		return false
	})
}

// killIfMonitor kills pid when it runs tether-conmon (never anything else).
func (p *podmanEnv) killIfMonitor(pid int) {
	if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); exe == p.mon {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// podman runs podman with stdin; it returns stdout, stderr, exit code.
func (p *podmanEnv) podman(stdin string, args ...string) (string, string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "podman", args...)
	c.Env = p.env
	return runCaptured(p.t, c, stdin)
}

// runCaptured runs c with stdin and returns its stdout, stderr and exit
// code; a command that could not run fails the test.
func runCaptured(t *testing.T, c *exec.Cmd, stdin string) (string, string, int) {
	t.Helper()
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", c.Args, err)
	}
	return out.String(), errb.String(), code
}

func (p *podmanEnv) must(args ...string) string {
	p.t.Helper()
	out, errs, code := p.podman("", args...)
	if code != 0 {
		p.t.Fatalf("podman %v: exit %d: %s", args, code, errs)
	}
	return out
}

// checkMonitor checks that the monitor podman recorded for a running
// container executes tether-conmon; it returns its pid.
func (p *podmanEnv) checkMonitor(name string) int {
	p.t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(p.must("inspect", "--format", "{{.State.ConmonPid}}", name)))
	if err != nil || pid <= 0 {
		p.t.Fatalf("no monitor pid for %s: %v", name, err)
	}
	if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); exe != p.mon {
		p.t.Fatalf("the monitor of %s (pid %d) runs %q, not %s", name, pid, exe, p.mon)
	}
	return pid
}

// script runs a podman command line under script(1), so podman has a
// terminal; it returns the output and the exit code.
func (p *podmanEnv) script(cmdline string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "script", "-qec", cmdline, "/dev/null")
	c.Env = p.env
	return runScript(p.t, c)
}

// runScript runs c, a script(1) command giving podman a terminal, and
// returns its output and exit code.
func runScript(t *testing.T, c *exec.Cmd) (string, int) {
	t.Helper()
	out, err := c.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestPodman_Isolated drives the real podman with tether-conmon as its
// monitor through what a user does, one subtest per behaviour.
func TestPodman_Isolated(t *testing.T) {
	p := newPodman(t)
	rootfs := p.rootfs
	t.Run("run --rm: exit code, stdout and stderr apart", func(t *testing.T) {
		out, errs, code := p.podman("", "run", "--rm", "--rootfs", rootfs, "sh", "-c", "echo hi; echo oops >&2; exit 4")
		if code != 4 || out != "hi\n" || errs != "oops\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 4, \"hi\\n\", \"oops\\n\"", code, out, errs)
		}
	})
	t.Run("run --memory 16m: an OOM kill shows in inspect as conmon's oom file says", func(t *testing.T) {
		// no swap either, so the allocation cannot escape the limit
		_, errs, code := p.podman("", "run", "--name", "oom", "--memory", "16m", "--memory-swap", "16m", "--rootfs", rootfs,
			"sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done")
		if code != 137 {
			t.Fatalf("run: exit %d (stderr %q), want 137", code, errs)
		}
		st := strings.TrimSpace(p.must("inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom"))
		if st != "true 137" {
			t.Fatalf("inspect says OOMKilled, ExitCode = %q; want \"true 137\"", st)
		}
		p.must("rm", "oom")
	})
	t.Run("an OOM kill of a child marks the container OOMKilled", func(t *testing.T) {
		// conmon's OOM handler writes the oom files on any OOM kill in
		// the cgroup, whichever the victim, so podman says OOMKilled with
		// init's own status; the child's death is init's stderr
		out, errs, code := p.podman("", "run", "--name", "oomchild", "--memory", "16m", "--memory-swap", "16m", "--rootfs", rootfs,
			"sh", "-c", `sh -c 'x=0123456789abcdef; while :; do x=$x$x; done'; exit 3`)
		if code != 3 || out != "" || errs != "Killed\n" {
			t.Fatalf("run: exit %d, stdout %q, stderr %q; want 3, \"\", \"Killed\\n\" (busybox sh on its child's SIGKILL)", code, out, errs)
		}
		if st := strings.TrimSpace(p.must("inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oomchild")); st != "true 3" {
			t.Fatalf("inspect says OOMKilled, ExitCode = %q; want \"true 3\"", st)
		}
		p.must("rm", "oomchild")
	})
	t.Run("a container ending without an OOM kill is not OOMKilled", func(t *testing.T) {
		if _, errs, code := p.podman("", "run", "--name", "nooom", "--memory", "16m", "--rootfs", rootfs, "sh", "-c", "exit 3"); code != 3 {
			t.Fatalf("run: exit %d (stderr %q), want 3", code, errs)
		}
		if st := strings.TrimSpace(p.must("inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", "nooom")); st != "false 3" {
			t.Fatalf("inspect says OOMKilled, ExitCode = %q; want \"false 3\"", st)
		}
		p.must("rm", "nooom")
	})
	t.Run("run -d, ps, inspect, stop -t of a TERM-ignoring container, wait, rm", func(t *testing.T) {
		p.must("run", "-d", "--name", "stopme", "--rootfs", rootfs, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
		p.checkMonitor("stopme")
		if st := p.must("ps", "--filter", "name=stopme", "--format", "{{.Status}}"); !strings.HasPrefix(st, "Up") {
			t.Fatalf("ps says %q", st)
		}
		if st := strings.TrimSpace(p.must("inspect", "--format", "{{.State.Status}}", "stopme")); st != "running" {
			t.Fatalf("inspect says %q", st)
		}
		podmanStopKilled(t, p.must, "stopme")
	})
	t.Run("logs byte-exact per stream", func(t *testing.T) {
		prog := `i=1; while [ $i -le 4000 ]; do echo "line $i"; i=$((i+1)); done; ` +
			`head -c 20480 /dev/zero | tr '\0' x; echo; echo to-stderr >&2; printf 'no newline'`
		p.must("run", "--name", "logs", "--rootfs", rootfs, "sh", "-c", prog)
		var want strings.Builder
		for i := 1; i <= 4000; i++ {
			fmt.Fprintf(&want, "line %d\n", i)
		}
		want.WriteString(strings.Repeat("x", 20480) + "\nno newline")
		out, errs, code := p.podman("", "logs", "logs")
		if code != 0 || out != want.String() || errs != "to-stderr\n" {
			t.Fatalf("logs: exit %d, stdout %d bytes (want %d, equal %v), stderr %q", code, len(out), want.Len(), out == want.String(), errs)
		}
		p.must("rm", "logs")
	})
	t.Run("logs -f follows until the exit", func(t *testing.T) {
		p.must("run", "-d", "--name", "follow", "--rootfs", rootfs, "sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done")
		out, _, code := p.podman("", "logs", "-f", "follow")
		if code != 0 || out != "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n" {
			t.Fatalf("logs -f: exit %d, %q", code, out)
		}
		p.must("rm", "follow")
	})
	t.Run("log-size-max truncates as conmon does", func(t *testing.T) {
		p.must("run", "--name", "small", "--log-opt", "max-size=4k", "--rootfs", rootfs, "sh", "-c",
			`i=1; while [ $i -le 500 ]; do echo "entry $i"; i=$((i+1)); done`)
		path := strings.TrimSpace(p.must("inspect", "--format", "{{.HostConfig.LogConfig.Path}}", "small"))
		fi, err := os.Stat(path)
		if err != nil || fi.Size() > 4096 || fi.Size() == 0 {
			t.Fatalf("log file %s: %v, size %d; want 1..4096 bytes", path, err, fi.Size())
		}
		out := p.must("logs", "small")
		if !strings.HasSuffix(out, "entry 499\nentry 500\n") || strings.Contains(out, "entry 1\n") {
			t.Fatalf("logs after truncation: %q", out)
		}
		p.must("rm", "small")
	})
	t.Run("run -i with stdin", func(t *testing.T) {
		out, _, code := p.podman("hello stdin\nsecond\n", "run", "--rm", "-i", "--rootfs", rootfs, "sh", "-c", "cat; echo done")
		if code != 0 || out != "hello stdin\nsecond\ndone\n" {
			t.Fatalf("run -i: exit %d, %q", code, out)
		}
	})
	t.Run("run -it under script, resize through ctl", func(t *testing.T) {
		out, code := p.script("podman run --rm -it --rootfs " + rootfs + " sh -c 'tty; exit 5'")
		if code != 5 || !strings.Contains(out, "/dev/pts/0") {
			t.Fatalf("run -it: exit %d, %q", code, out)
		}
		p.must("run", "-dt", "--name", "tty", "--rootfs", rootfs, "sh", "-c", "while :; do stty size; sleep 0.2; done")
		p.checkMonitor("tty")
		bundle := filepath.Dir(strings.TrimSpace(p.must("inspect", "--format", "{{.HostConfig.LogConfig.Path}}", "tty")))
		ctl, err := os.OpenFile(filepath.Join(bundle, "ctl"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(ctl, "1 33 101\n")
		ctl.Close()
		testutil.Eventually(t, 10*time.Second, "the new size in the output", func() bool {
			return strings.Contains(p.must("logs", "tty"), "33 101")
		})
		p.must("rm", "-f", "-t", "0", "tty")
	})
	t.Run("exec codes, exec -d, exec -it", func(t *testing.T) {
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
			out, _, code := p.podman("", append([]string{"exec", "ex"}, tc.args...)...)
			if code != tc.code || out != tc.out {
				t.Errorf("exec %v: exit %d, %q; want %d, %q", tc.args, code, out, tc.code, tc.out)
			}
		}
		p.must("exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d")
		testutil.Eventually(t, 10*time.Second, "the detached exec's file", func() bool {
			out, _, _ := p.podman("", "exec", "ex", "cat", "/tmp/d")
			return out == "detached\n"
		})
		out, code := p.script("podman exec -it ex sh -c 'tty; exit 6'")
		if code != 6 || !strings.Contains(out, "/dev/pts/") {
			t.Fatalf("exec -it: exit %d, %q", code, out)
		}
		p.must("rm", "-f", "-t", "0", "ex")
	})
	t.Run("a create failure leaves nothing", func(t *testing.T) {
		_, errs, code := p.podman("", "run", "--rm", "--name", "bad", "--rootfs", rootfs, "/no/such/binary")
		if code == 0 || !strings.Contains(errs, "no such file") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		if out := p.must("ps", "-aq", "--filter", "name=bad"); out != "" {
			t.Fatalf("container left: %q", out)
		}
		out, _ := exec.Command("runc", "list", "-q").Output()
		for _, l := range strings.Fields(string(out)) {
			if strings.Contains(p.must("ps", "-aq", "--no-trunc"), l) {
				t.Fatalf("runtime container %s left", l)
			}
		}
		if pids := p.monitorsRunning(); len(pids) != 0 {
			t.Fatalf("monitors still running: %v", pids)
		}
		// Earlier subtests' monitors may still be running their exit
		// command when podman rm returns; the failed create's is never made
		// or is removed before the monitor reports the failure.
		testutil.Eventually(t, 10*time.Second, "no monitor folder left in "+p.storeRoot(), func() bool {
			return len(p.storeFolders()) == 0
		})
	})
	t.Run("no descriptor leaks into the container", func(t *testing.T) {
		podmanNoLeakedFds(t, p.must, rootfs)
	})
	t.Run("monitor killed -9: adopted, true exit status, later output logged", func(t *testing.T) {
		p.must("run", "-d", "--name", "adopt", "--rootfs", rootfs, "sh", "-c",
			"echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; echo after-err >&2; exit 7")
		podmanKillMonitor(t, p.storeRoot(), p.checkMonitor("adopt"))
		p.must("exec", "adopt", "touch", "/tmp/go")
		start := time.Now()
		podmanExpectExited7(t, p.must, p.storeFolders, "adopt")
		t.Logf("Exited (7) seen (with wait and the store folder removed) %v after the container was told to exit", time.Since(start).Round(time.Millisecond))
		out, errs, _ := p.podman("", "logs", "adopt")
		if out != "before\nafter\n" || errs != "after-err\n" {
			t.Fatalf("logs: %q, %q", out, errs)
		}
		p.must("start", "adopt")
		if code := strings.TrimSpace(p.must("wait", "adopt")); code != "7" {
			t.Fatalf("wait after a new start says %s, want 7", code)
		}
		p.must("rm", "adopt")
	})
	t.Run("monitor killed -9 while the watcher is stopped: the watcher's status", func(t *testing.T) {
		// Every container shares the rootfs: a flag file of its own.
		p.must("run", "-d", "--name", "lost", "--rootfs", rootfs, "sh", "-c",
			"while [ ! -e /tmp/go-lost ]; do sleep 0.1; done; exit 7")
		defer os.Remove(filepath.Join(rootfs, "tmp", "go-lost"))
		mon := p.checkMonitor("lost")
		pid := strings.TrimSpace(p.must("inspect", "--format", "{{.State.Pid}}", "lost"))
		w := p.watcherPid()
		// It holds the container (and watches its init) once it holds a
		// read end of the init's stdout pipe.
		out, err := os.Readlink("/proc/" + pid + "/fd/1")
		if err != nil || !strings.HasPrefix(out, "pipe:") {
			t.Fatalf("init's stdout %q (%v): want a pipe", out, err)
		}
		testutil.Eventually(t, 10*time.Second, "the watcher to hold the container's stdout pipe", func() bool {
			ents, _ := os.ReadDir("/proc/" + strconv.Itoa(w) + "/fd")
			for _, e := range ents {
				if l, _ := os.Readlink("/proc/" + strconv.Itoa(w) + "/fd/" + e.Name()); l == out {
					return true
				}
			}
			return false
		})
		// The watcher is stopped, not killed: it still holds the pipes and
		// its connector socket queues the init's exit event meanwhile.
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
		p.must("exec", "lost", "touch", "/tmp/go-lost")
		testutil.Eventually(t, 10*time.Second, "the container's init to end", func() bool {
			st, err := os.ReadFile("/proc/" + pid + "/stat")
			return err != nil || strings.Contains(string(st), ") Z ")
		})
		syscall.Kill(w, syscall.SIGCONT)
		stopped = false
		podmanExpectExited7(t, p.must, p.storeFolders, "lost")
		p.must("rm", "lost")
	})
}

// watcherPid is the watcher's recorded pid, checked to run tether-conmon.
func (p *podmanEnv) watcherPid() int {
	p.t.Helper()
	return podmanWatcherPid(p.t, p.storeRoot(), p.mon)
}

// monitorsRunning lists the tether-conmon processes serving containers
// (not the watcher).
func (p *podmanEnv) monitorsRunning() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if exe == p.mon && !bytes.Contains(cmd, []byte("watch")) && bytes.Contains(cmd, []byte(p.run)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// podmanNoLeakedFds: a container podman starts through the monitor (must
// runs podman, rootful or rootless) holds only its stdio, nothing of the
// monitor's.
func podmanNoLeakedFds(t *testing.T, must func(args ...string) string, rootfs string) {
	t.Helper()
	must("run", "-d", "--name", "fds", "--rootfs", rootfs, "sleep", "600")
	pid := strings.TrimSpace(must("inspect", "--format", "{{.State.Pid}}", "fds"))
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name())
		names = append(names, e.Name()+"->"+target)
	}
	if len(ents) != 3 {
		t.Fatalf("the container's init holds %v, want only 0, 1, 2", names)
	}
	must("rm", "-f", "-t", "0", "fds")
}

// podmanExpectExited7: podman (through must) reports container name
// Exited (7) and its wait says 7, and the monitors' store (storeFolders)
// is left empty: what a container that exited 7 while, or after, its
// monitor was killed must come to.
func podmanExpectExited7(t *testing.T, must func(args ...string) string, storeFolders func() []string, name string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "podman ps -a to say Exited (7)", func() bool {
		return strings.HasPrefix(must("ps", "-a", "--filter", "name="+name, "--format", "{{.Status}}"), "Exited (7)")
	})
	if code := strings.TrimSpace(must("wait", name)); code != "7" {
		t.Fatalf("wait says %s, want 7", code)
	}
	testutil.Eventually(t, 10*time.Second, "the monitors' store folder to be removed", func() bool {
		return len(storeFolders()) == 0
	})
}

// podmanStopKilled: `podman stop -t 1` of running container name, which
// ignores SIGTERM, ends in the SIGKILL after the grace period: wait says
// 137, ps -a Exited (137), and rm leaves nothing listed.
func podmanStopKilled(t *testing.T, must func(args ...string) string, name string) {
	t.Helper()
	must("stop", "-t", "1", name)
	if code := strings.TrimSpace(must("wait", name)); code != "137" {
		t.Fatalf("wait says %s, want 137", code)
	}
	if st := must("ps", "-a", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.HasPrefix(st, "Exited (137)") {
		t.Fatalf("ps -a says %q", st)
	}
	must("rm", name)
	if out := must("ps", "-aq", "--filter", "name="+name); out != "" {
		t.Fatalf("still listed after rm: %q", out)
	}
}
