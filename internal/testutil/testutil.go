// Package testutil holds what Tether's integration tests share: the root
// gate, the binaries under test, a fresh runtime root per test that is
// cleaned up even when the test fails, and busybox bundles.
package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/sweep"
	"github.com/tether-run/tether/internal/testutil/cgpath"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/runtime"
	"github.com/tether-run/tether/store"
)

// RequireRoot skips t when not root, with the reason; when
// TETHER_REQUIRE_ROOT_TESTS is set (make test as root) it fails instead,
// so CI can never pass on skipped integration tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("TETHER_REQUIRE_ROOT_TESTS") != "" {
		t.Fatal("integration tests need root and TETHER_REQUIRE_ROOT_TESTS is set")
	}
	t.Skip("needs root: containers are started with the real runc (run as root, e.g. sudo make test)")
}

// RequireRuntime skips t when the OCI runtime binary is missing, or fails
// under TETHER_REQUIRE_ROOT_TESTS.
func RequireRuntime(t testing.TB, name string) {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("TETHER_REQUIRE_ROOT_TESTS") != "" {
			t.Fatalf("%s is not installed: make deps installs it", name)
		}
		t.Skipf("%s is not installed: apt-get install %s", name, name)
	}
}

var build struct {
	once sync.Once
	dir  string
	err  error
}

// BinDir returns the folder holding tether and tether-shim: TETHER_BIN_DIR
// when set (make test sets it), otherwise a build made once per test binary.
func BinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("TETHER_BIN_DIR"); d != "" {
		return d
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "tetherbin")
		if build.err != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", build.dir+"/",
			"github.com/tether-run/tether/cmd/tether", "github.com/tether-run/tether/cmd/tether-shim", "github.com/tether-run/tether/cmd/tether-conmon").CombinedOutput()
		if err != nil {
			build.err = errors.New(string(out))
		}
	})
	if build.err != nil {
		t.Fatalf("build binaries: %v", build.err)
	}
	return build.dir
}

// Env is one test's runtime root and the tools to use it.
type Env struct {
	T       testing.TB
	Root    string
	Runtime string
	Bin     string
	mgr     *runtime.Manager
	cgroups []string // the cgroupsPaths of the env's bundles, removed at cleanup
}

// NewEnv makes a fresh short root (socket paths stay under 108 bytes) for
// the OCI runtime named rt and registers a cleanup that kills every shim
// and init by recorded identity, deletes every runtime container and
// removes the root, whatever the test's outcome.
func NewEnv(t testing.TB, rt string) *Env {
	t.Helper()
	RequireRuntime(t, rt)
	root, err := os.MkdirTemp("", "tt")
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Root: root, Runtime: rt, Bin: BinDir(t)}
	t.Cleanup(e.cleanup)
	return e
}

// Manager returns a runtime.Manager on the env's root.
func (e *Env) Manager() *runtime.Manager {
	e.T.Helper()
	if e.mgr == nil {
		m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: e.Runtime,
			ShimBinary: filepath.Join(e.Bin, "tether-shim")})
		if err != nil {
			e.T.Fatal(err)
		}
		e.mgr = m
	}
	return e.mgr
}

// NewManager returns a new Manager on the same root: a "restarted" manager.
func (e *Env) NewManager() *runtime.Manager {
	e.mgr = nil
	return e.Manager()
}

// Bundle writes a busybox bundle running args into a fresh folder.
func (e *Env) Bundle(args ...string) string {
	return e.BundleWith(bundle.Options{Args: args})
}

// BundleWith writes a bundle with the given options into a fresh folder.
// Its config.json carries a linux.cgroupsPath unique to the test run
// (cgpath), so its container never shares a cgroup with a container of
// another test or suite running at once. One bundle is for one container
// at a time: SameBundle gives another container the same rootfs and
// config with a cgroup of its own.
func (e *Env) BundleWith(opts bundle.Options) string {
	e.T.Helper()
	dir := e.bundleDir()
	if err := bundle.Write(dir, opts); err != nil {
		e.T.Fatal(err)
	}
	e.newCgroup(dir)
	return dir
}

// SameBundle returns a new bundle folder for one more container of b at
// the same time: b's config.json with root.path pointing at b's rootfs
// and a cgroupsPath of its own. b's config is read now; edit it first.
func (e *Env) SameBundle(b string) string {
	e.T.Helper()
	dir := e.bundleDir()
	if err := os.Mkdir(dir, 0o755); err != nil {
		e.T.Fatal(err)
	}
	EditSpec(e.T, b, func(*specs.Spec) {}) // fails the test if b's config does not parse
	data, err := os.ReadFile(filepath.Join(b, "config.json"))
	if err != nil {
		e.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		e.T.Fatal(err)
	}
	EditSpec(e.T, dir, func(s *specs.Spec) {
		if !filepath.IsAbs(s.Root.Path) {
			s.Root.Path = filepath.Join(b, s.Root.Path)
		}
	})
	e.newCgroup(dir)
	return dir
}

// bundleDir makes a short fresh folder, removed at cleanup, and returns
// the not yet existing bundle path "b" inside it.
func (e *Env) bundleDir() string {
	e.T.Helper()
	dir, err := os.MkdirTemp("", "tb")
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "b")
}

// newCgroup gives the bundle at dir a fresh cgroupsPath, removed (once its
// container is deleted) at the env's cleanup.
func (e *Env) newCgroup(dir string) {
	e.T.Helper()
	p := cgpath.New()
	EditSpec(e.T, dir, func(s *specs.Spec) {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.CgroupsPath = p
	})
	e.cgroups = append(e.cgroups, p)
}

// EditSpec rewrites the config.json of the bundle at dir through edit,
// failing the test on any error.
func EditSpec(t testing.TB, dir string, edit func(*specs.Spec)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	edit(&s)
	if data, err = json.MarshalIndent(&s, "", "\t"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Result is what a CLI call did.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Tether runs the CLI on the env's root and waits for it.
func (e *Env) Tether(args ...string) Result {
	e.T.Helper()
	cmd := e.Command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.T.Fatalf("run tether %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// MustTether runs the CLI and fails the test unless it exits 0.
func (e *Env) MustTether(args ...string) string {
	e.T.Helper()
	r := e.Tether(args...)
	if r.Code != 0 {
		e.T.Fatalf("tether %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// Command returns an unstarted CLI command on the env's root.
func (e *Env) Command(args ...string) *exec.Cmd {
	full := append([]string{"--root", e.Root, "--runtime", e.Runtime}, args...)
	return exec.Command(filepath.Join(e.Bin, "tether"), full...)
}

// cleanup removes everything the test started, by recorded identity only.
func (e *Env) cleanup() {
	ents, _ := os.ReadDir(e.Root)
	for _, ent := range ents {
		if ent.IsDir() && ids.Match(ent.Name()) {
			e.cleanContainer(filepath.Join(e.Root, ent.Name()), ent.Name())
		}
	}
	e.cleanRuntimeRoots()
	for _, p := range e.cgroups {
		cgpath.Remove(p) // the runtime's delete removed it unless a test left a process there
	}
	os.RemoveAll(e.Root)
}

// cleanRuntimeRoots deletes runtime containers that have no folder (a
// create cut off half-way).
func (e *Env) cleanRuntimeRoots() {
	roots, _ := filepath.Glob(filepath.Join(e.Root, ".oci", "*"))
	for _, r := range roots {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sweep.DeleteAll(ctx, &oci.Runtime{Command: filepath.Base(r), Root: r})
		cancel()
	}
}

func (e *Env) cleanContainer(dir, id string) {
	sweep.KillRecorded(dir)
	rt := &oci.Runtime{Command: e.Runtime, Root: filepath.Join(e.Root, ".oci", e.Runtime)}
	if rec, err := store.At(filepath.Dir(dir), id).ReadRecord(); err == nil {
		rt = &oci.Runtime{Command: rec.Runtime, Root: rec.RuntimeRoot, Args: rec.RuntimeArgs}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rt.Delete(ctx, id, &oci.DeleteOpts{Force: true})
}

// Eventually polls cond every 20 ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Runtimes lists the OCI runtimes every integration suite runs with.
var Runtimes = []string{"runc", "crun"}

// EachRuntime runs f as one subtest per OCI runtime in Runtimes, each with
// a fresh Env.
func EachRuntime(t *testing.T, f func(t *testing.T, e *Env)) {
	t.Helper()
	for _, rt := range Runtimes {
		t.Run(rt, func(t *testing.T) { f(t, NewEnv(t, rt)) })
	}
}

// ZombieChildren lists the children of pid that have exited and not been
// reaped.
func ZombieChildren(pid int) []int {
	var zs []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(p); err == nil && st.PPid == pid && st.State == 'Z' {
			zs = append(zs, p)
		}
	}
	return zs
}

// FDCount counts the open file descriptors of pid.
func FDCount(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// FDs maps each open file descriptor of pid to what it points at.
func FDs(t testing.TB, pid int) map[int]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]string{}
	for _, ent := range ents {
		fd, _ := strconv.Atoi(ent.Name())
		fds[fd], _ = os.Readlink(filepath.Join(dir, ent.Name()))
	}
	return fds
}

// ShimPids finds the live tether-shim processes serving root (zombies not
// yet reaped by their new parent are left out), from their command lines.
// It only looks: tests never signal by name.
func ShimPids(root string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) != "tether-shim" || !slices.Contains(args, root) {
			continue
		}
		if st, err := proc.ReadStat(pid); err == nil && st.State != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// IsJournal reports whether name is the root's event journal (events.log
// or its rotated copy), which outlives the containers it tells of.
func IsJournal(name string) bool {
	return name == filepath.Base(store.JournalPath("/")) || name == filepath.Base(store.JournalPath("/"))+".1"
}
