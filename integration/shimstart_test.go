package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// TestCoreShimStart: a long-lived manager (the default) starts each shim
// through the start helper, so the shim is never its child; a short-lived
// one (Opts.ShortLived, the CLI) starts the shim itself (TETHER_SHIM_DIRECT=1
// in its starting environment): its
// child until it exits, and reaped by it if the shim ends meanwhile. Both
// shims lead a session of their own, so a kill of the manager's process
// group never reaches them.
func TestCoreShimStart(t *testing.T) {
	testutil.RequireRoot(t)
	rt := testutil.Runtimes[0]
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprintf("short-lived=%v", short), func(t *testing.T) {
			e := testutil.NewEnv(t, rt)
			m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: rt,
				ShimBinary: filepath.Join(e.Bin, "tether-shim"), ShortLived: short})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			c, err := m.Create(ctx, "ss", e.Bundle("sleep", "1000"), runtime.CreateOpts{})
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := proc.ReadStat(st.ShimPid)
			if err != nil {
				t.Fatal(err)
			}
			if child := ps.PPid == os.Getpid(); child != short {
				t.Errorf("shim %d has parent %d (this test is %d): child=%v, want %v", st.ShimPid, ps.PPid, os.Getpid(), child, short)
			}
			if pgid, err := syscall.Getpgid(st.ShimPid); err != nil || pgid != st.ShimPid {
				t.Errorf("shim %d: process group %d (%v), want its own", st.ShimPid, pgid, err)
			}
			environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.ShimPid))
			if direct := strings.Contains("\x00"+string(environ), "\x00TETHER_SHIM_DIRECT=1\x00"); direct != short {
				t.Errorf("shim started with TETHER_SHIM_DIRECT=1: %v, want %v", direct, short)
			}
			shim, err := proc.Identify(st.ShimPid)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, true); err != nil {
				t.Fatal(err)
			}
			// Reaped by whoever is its parent: gone, not a zombie of ours.
			// A zombie is dead (Alive is false) a moment before its parent's
			// wait returns, so the check for zombies waits too: only one
			// that nobody reaps lasts.
			testutil.Eventually(t, coreWait, "the shim to be gone", func() bool { return !shim.Alive() })
			testutil.Eventually(t, coreWait, "no zombie child of the manager", func() bool {
				return len(testutil.ZombieChildren(os.Getpid())) == 0
			})
		})
	}
}
