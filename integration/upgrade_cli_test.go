package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/testutil"
)

// TestUpgradeCLI: tether upgrade --all upgrades every container's shim and
// prints one line each, old binary and version -> new; a call without IDs
// or with both --all and IDs is a usage error (2); a missing binary is one
// line naming it (1), and the shim serves on.
func TestUpgradeCLI(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	a, b := upgID("ca"), upgID("cb")
	upgStart(t, e, a, "sleep", "1000")
	upgStart(t, e, b, "sleep", "1000")
	next := upgNewBinary(t, e)
	r := e.Tether("upgrade", "--shim", next, "--all")
	if r.Code != 0 {
		t.Fatalf("upgrade --all: exit %d: %s", r.Code, r.Stderr)
	}
	for _, id := range []string{a, b} {
		st := upgState(t, e, id)
		want := fmt.Sprintf("%s: shim pid %d %s (", id, st.ShimPid, filepath.Join(e.Bin, "tether-shim"))
		if !strings.Contains(r.Stdout, want) || !strings.Contains(r.Stdout, ") -> "+next+" (") {
			t.Errorf("upgrade --all printed %q, want a line starting %q and naming %s", r.Stdout, want, next)
		}
		if exe := upgExe(t, st.ShimPid); exe != next {
			t.Errorf("%s: shim runs %s, want %s", id, exe, next)
		}
	}
	for _, args := range [][]string{{"upgrade"}, {"upgrade", "--all", a}} {
		if r := e.Tether(args...); r.Code != 2 {
			t.Errorf("tether %v: exit %d, want 2 (usage): %s", args, r.Code, r.Stderr)
		}
	}
	missing := filepath.Join(t.TempDir(), "no-shim")
	r = e.Tether("upgrade", "--shim", missing, a)
	if r.Code != 1 || !strings.Contains(r.Stderr, missing) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Errorf("upgrade to a missing binary: exit %d, stderr %q; want 1 and one line naming it", r.Code, r.Stderr)
	}
	if exe := upgExe(t, upgState(t, e, a).ShimPid); exe != next {
		t.Errorf("after the refused upgrade the shim runs %s, want %s still", exe, next)
	}
	e.MustTether("delete", "--force", a, b)
	coreAssertNothingLeft(t, e)
}
