package ctrd

// The containerd harness: a private containerd per test (temp root, state
// and sockets, its own config), started by the test and killed by its
// pid, with containerd-shim-tether-v1 first on its PATH; a ctr wrapper;
// and a clean-up that removes every shim, init, runtime container, mount
// and socket the test left, by recorded identity, whatever the outcome.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/sweep"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/shim/containerd"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// tetherRuntime is the runtime name containerd maps to our binary.
const tetherRuntime = "io.containerd.tether.v1"

var shimBuild struct {
	once sync.Once
	dir  string
	err  error
}

// shimBinDir returns a folder holding containerd-shim-tether-v1:
// TETHER_BIN_DIR when it has it (make test builds it there), otherwise a
// build made once per test binary.
func shimBinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("TETHER_BIN_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "containerd-shim-tether-v1")); err == nil {
			return d
		}
	}
	shimBuild.once.Do(func() {
		shimBuild.dir, shimBuild.err = os.MkdirTemp("", "ctdbin")
		if shimBuild.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", shimBuild.dir+"/", "github.com/tether-run/tether/cmd/containerd-shim-tether-v1")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			shimBuild.err = errors.New(string(out))
		}
	})
	if shimBuild.err != nil {
		t.Fatalf("build containerd-shim-tether-v1: %v", shimBuild.err)
	}
	return shimBuild.dir
}

// requireContainerd fails (as root under make test) or skips when the
// containerd and ctr binaries are missing.
func requireContainerd(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, b := range []string{containerdBin(), ctrBin(), "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("TETHER_REQUIRE_ROOT_TESTS") != "" {
				t.Fatalf("%s is not installed: make deps installs containerd", b)
			}
			t.Skipf("%s is not installed: apt-get install containerd", b)
		}
	}
}

// containerdBin and ctrBin are the daemon and client under test:
// Debian's by default, TETHER_CONTAINERD_BIN and TETHER_CTR_BIN for
// another build (make test-containerd2).
func containerdBin() string { return envOr("TETHER_CONTAINERD_BIN", "containerd") }
func ctrBin() string        { return envOr("TETHER_CTR_BIN", "ctr") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ctrd is one private containerd.
type ctrd struct {
	t        testing.TB
	dir      string // temp root of everything it owns
	sock     string
	ns       string // the namespace ctr uses, unique to the run
	cri      bool
	extraCfg string
	pid      int
	log      string
	done     chan struct{}
}

// uniq returns a short name unique to the run.
func uniq(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// startContainerd starts a private containerd; cri enables the CRI plugin
// with extraCfg appended to the config.
func startContainerd(t testing.TB, cri bool, extraCfg string) *ctrd {
	t.Helper()
	requireContainerd(t)
	dir, err := os.MkdirTemp("", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	c := &ctrd{t: t, dir: dir, sock: filepath.Join(dir, "c.sock"), ns: uniq("tt"), cri: cri,
		extraCfg: extraCfg, log: filepath.Join(dir, "containerd.log")}
	if cri {
		c.ns = "k8s.io"
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(c.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	c.start()
	return c
}

func (c *ctrd) config() string {
	disabled := `disabled_plugins = ["io.containerd.grpc.v1.cri"]`
	if c.cri {
		disabled = ""
	}
	return fmt.Sprintf(`version = 2
root = %q
state = %q
%s
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  level = "trace"
%s
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), disabled, c.sock, c.sock+".ttrpc", c.extraCfg)
}

// start runs containerd and waits until it answers.
func (c *ctrd) start() {
	c.t.Helper()
	logf, err := os.OpenFile(c.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(containerdBin(), "--config", filepath.Join(c.dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+shimBinDir(c.t)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start containerd: %v", err)
	}
	logf.Close()
	c.pid = cmd.Process.Pid
	c.done = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(c.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.ctrErr("version"); err == nil {
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("containerd exited at start-up: %s", c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("containerd did not answer within 30 s: %s", c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills containerd with SIGKILL (its shims live on) and waits for it.
func (c *ctrd) kill9() {
	c.t.Helper()
	if c.pid == 0 {
		return
	}
	syscall.Kill(c.pid, syscall.SIGKILL)
	<-c.done
	c.pid = 0
}

func (c *ctrd) logTail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// ctrErr runs ctr against this containerd in its namespace.
func (c *ctrd) ctrErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--address", c.sock, "--namespace", c.ns}, args...)
	cmd := exec.CommandContext(ctx, ctrBin(), full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// ctr runs ctr and fails the test on error.
func (c *ctrd) ctr(args ...string) string {
	c.t.Helper()
	out, err := c.ctrErr(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// ctrCode runs ctr and returns its output and exit code.
func (c *ctrd) ctrCode(args ...string) (string, int) {
	c.t.Helper()
	out, err := c.ctrErr(args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		c.t.Logf("%v", err)
		return out, ee.ExitCode()
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return out, 0
}

// taskDir is the bundle containerd made for task id.
func (c *ctrd) taskDir(id string) string {
	return filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", c.ns, id)
}

// shimPid reads the pid of task id's shim from Tether's record.
func (c *ctrd) shimPid(id string) int {
	c.t.Helper()
	ident, err := store.At(filepath.Dir(containerd.StateDir(c.taskDir(id), id)), id).ReadShimPid()
	if err != nil {
		c.t.Fatalf("shim pid of %s: %v", id, err)
	}
	return ident.Pid
}

// rootfs writes a busybox root filesystem for --rootfs and returns it.
func (c *ctrd) rootfs() string {
	c.t.Helper()
	dir := filepath.Join(c.dir, uniq("b"))
	if err := bundle.Write(dir, bundle.Options{Args: []string{"true"}}); err != nil {
		c.t.Fatal(err)
	}
	return filepath.Join(dir, "rootfs")
}

// cleanup kills containerd and everything left of its tasks: each shim
// and init named by Tether's pid records (identity checked), the
// runtime's containers, rootfs mounts and task sockets; then the folder.
func (c *ctrd) cleanup() {
	c.kill9()
	tasks, _ := filepath.Glob(filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, bundleDir := range tasks {
		id, ns := filepath.Base(bundleDir), filepath.Base(filepath.Dir(bundleDir))
		f := store.At(filepath.Dir(containerd.StateDir(bundleDir, id)), id)
		sweep.KillRecorded(f.Dir())
		rt := &oci.Runtime{Command: "runc", Root: "/run/containerd/runc/" + ns}
		if rec, err := f.ReadRecord(); err == nil {
			rt = &oci.Runtime{Command: rec.Runtime, Root: rec.RuntimeRoot}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		rt.Delete(ctx, id, &oci.DeleteOpts{Force: true})
		cancel()
		for range 8 {
			if unix.Unmount(filepath.Join(bundleDir, "rootfs"), unix.MNT_DETACH) != nil {
				break
			}
		}
		os.Remove(shimSocket(c.sock, ns, id))
	}
	if !c.cri {
		os.RemoveAll("/run/containerd/runc/" + c.ns)
	}
	c.unmountUnder(c.dir)
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Logf("remove %s: %v", c.dir, err)
	}
}

// unmountUnder detaches every mount below dir (snapshots, shm), deepest
// first.
func (c *ctrd) unmountUnder(dir string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}

// shimSocket is the task socket start makes (see socketPath in the binary).
func shimSocket(address, ns, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
}
