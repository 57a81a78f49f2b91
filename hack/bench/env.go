package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/sweep"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/runtime"
)

// cmdTimeout bounds every command the bench runs. In-flight commands are
// never killed on an interrupt: they finish (or time out), then the bench
// cleans up, so no create is ever cut off half-way by the bench itself.
const cmdTimeout = 2 * time.Minute

// bench is one run: a fresh folder under /tmp holding a tether root, the
// baselines' runtime roots and the bundles, and everything needed to
// remove what was started in it.
type bench struct {
	bin     string // folder of tether and tether-shim
	rt      string // OCI runtime name (runc, crun)
	rtPath  string // its resolved path
	dir     string // the run's folder
	root    string // tether's root
	rawRoot string // --root of the runtime used directly (baselines)
	prefix  string // prefix of every container ID of this run
	n       int    // samples per timed row
	par     int    // parallel starts and deletes in the scale pass

	sleepBundle string

	cleanOnce sync.Once
}

func newBench(bin, rt string, n, par int) (*bench, error) {
	for _, name := range []string{"tether", "tether-shim"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("%s: %w: run 'make build' or pass -bin", name, err)
		}
	}
	rtPath, err := exec.LookPath(rt)
	if err != nil {
		return nil, fmt.Errorf("OCI runtime %s: %w: make deps installs runc and crun", rt, err)
	}
	dir, err := os.MkdirTemp("", "tbench")
	if err != nil {
		return nil, err
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	b := &bench{bin: bin, rt: rt, rtPath: rtPath, dir: dir, root: filepath.Join(dir, "r"),
		rawRoot: filepath.Join(dir, "raw"), n: n, par: par,
		// Unique across concurrent runs: runc names a container's cgroups
		// after its ID, so IDs must not collide machine-wide.
		prefix: "tb" + hex.EncodeToString(rnd[:])}
	b.sleepBundle = filepath.Join(dir, "sleep")
	if err := bundle.Write(b.sleepBundle, bundle.Options{Args: []string{"sleep", "100000"}}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// id names container i of a kind.
func (b *bench) id(kind string, i int) string { return fmt.Sprintf("%s-%s%d", b.prefix, kind, i) }

// cdir is the tether state folder of container id.
func (b *bench) cdir(id string) string { return filepath.Join(b.root, id) }

// run runs name with args in a process group of its own (a terminal's
// ^C reaches the bench only), waits at most cmdTimeout and returns its wall
// time. Its stdout goes to /dev/null and its stderr to an unlinked file, not
// to pipes: a runtime's create hands its stdio to the container, which
// would hold a pipe open for ever. A non-zero exit is an error carrying
// its stderr.
func run(name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	errf, err := os.CreateTemp("", "tbench-stderr")
	if err != nil {
		return 0, err
	}
	os.Remove(errf.Name())
	defer errf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = errf
	t0 := time.Now()
	err = cmd.Run()
	d := time.Since(t0)
	if err != nil {
		msg := make([]byte, 4096)
		k, _ := errf.ReadAt(msg, 0)
		return d, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err,
			strings.TrimSpace(string(msg[:k])))
	}
	return d, nil
}

// tether runs the CLI on the bench's root.
func (b *bench) tether(args ...string) (time.Duration, error) {
	full := append([]string{"--root", b.root, "--runtime", b.rt}, args...)
	return run(filepath.Join(b.bin, "tether"), full...)
}

// runtimeCmd runs the OCI runtime directly on root, the way tether's
// binding does: its own --log in JSON.
func (b *bench) runtimeCmd(root string, args ...string) (time.Duration, error) {
	full := append([]string{"--root", root, "--log", filepath.Join(b.dir, "runtime.log"), "--log-format", "json"}, args...)
	return run(b.rtPath, full...)
}

// tetherRuntimeRoot is the --root tether gives the runtime.
func (b *bench) tetherRuntimeRoot() string {
	return filepath.Join(b.root, ".oci", filepath.Base(b.rtPath))
}

// manager returns a fresh manager on the bench's root.
func (b *bench) manager() (*runtime.Manager, error) {
	return runtime.New(runtime.Opts{Root: b.root, Runtime: b.rt,
		ShimBinary: filepath.Join(b.bin, "tether-shim")})
}

// cleanup removes everything the run started, by recorded identity only:
// tether's shims, inits and exec'd processes, every runtime container in
// the run's runtime roots, conmon monitors, then the run's folder. It runs
// once, whoever calls it first (the end of the run or the signal handler).
func (b *bench) cleanup() {
	b.cleanOnce.Do(func() {
		ents, _ := os.ReadDir(b.root)
		for _, e := range ents {
			if e.IsDir() && ids.Match(e.Name()) {
				sweep.KillRecorded(b.cdir(e.Name()))
			}
		}
		killConmons(filepath.Join(b.dir, "conmon"), b.dir)
		roots, _ := filepath.Glob(filepath.Join(b.root, ".oci", "*"))
		roots = append(roots, b.rawRoot, filepath.Join(b.dir, "conmon", "oci"))
		for _, r := range roots {
			deleteAll(b.rtPath, r)
		}
		if err := os.RemoveAll(b.dir); err != nil {
			fmt.Fprintf(os.Stderr, "bench: remove %s: %v\n", b.dir, err)
		}
	})
}

// deleteAll force-deletes every container the runtime knows in root.
func deleteAll(rtPath, root string) {
	if _, err := os.Stat(root); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sweep.DeleteAll(ctx, &oci.Runtime{Command: rtPath, Root: root}); err != nil {
		fmt.Fprintf(os.Stderr, "bench: cleanup %s: %v\n", root, err)
	}
}

// errStopped is returned by a phase cut short by an interrupt.
var errStopped = errors.New("interrupted")
