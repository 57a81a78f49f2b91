package integration

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/testutil"
)

// TestOOMLauncherInEveryShimBinary: the shim core runs the OCI runtime
// through its own binary's oom-exec action whenever it lowered its own OOM
// score (a host with CAP_SYS_RESOURCE, where this one has none, so the
// core never needs it here). Every binary that hosts the core must
// answer it: tether-conmon did not, and every runc create failed under
// podman in the cgroup v2 VM (as root with CAP_SYS_RESOURCE).
func TestOOMLauncherInEveryShimBinary(t *testing.T) {
	bin := testutil.BinDir(t)
	for _, name := range []string{"tether-shim", "tether-conmon"} {
		// from a raised score (raising needs no privilege) back to 0
		cmd := exec.Command("sh", "-c", `echo 100 >/proc/self/oom_score_adj && exec "$0" oom-exec 0 -- cat /proc/self/oom_score_adj`,
			filepath.Join(bin, name))
		out, err := cmd.CombinedOutput()
		adj, aerr := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || aerr != nil {
			t.Errorf("%s oom-exec 0 -- cat: %v: %q; want the program run", name, err, out)
			continue
		}
		if adj != 0 {
			t.Errorf("%s oom-exec 0: the program ran at oom_score_adj %d, want 0", name, adj)
		}
	}
}
