package shim

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/oci"
)

// ShimOOMScoreAdj is the OOM score adjustment a shim gives itself, so that
// under memory pressure the kernel kills a container before the shim that
// would record its exit. It is containerd's OOMScoreMaxKillable: the shim
// stays killable as a last resort. conmon protects itself the same way
// (-1000).
const ShimOOMScoreAdj = -999

// OOMExecAction is the tether-shim action "oom-exec ADJ -- PROG ARG...":
// set our own OOM score adjustment to ADJ, then execute PROG. The shim
// runs the OCI runtime's create and exec through it.
//
// Why: oom_score_adj is inherited at fork, so a runtime started by the
// shim would run at the shim's -999 and so would the container's
// processes it forks, unless the bundle sets process.oomScoreAdj (runc and
// crun write it only when set). conmon resets the value in its child
// between fork and exec; Go's os/exec has no hook there, so the shim
// executes itself with this action instead, which costs one exec.
const OOMExecAction = "oom-exec"

// oomLauncher is the argv prefix that runs a command at OOM score
// adjustment adj through OOMExecAction. /proc/self/exe is resolved in the
// forked child, so it names this very shim binary even if the file on
// disk has been replaced since.
func oomLauncher(adj int) []string {
	return []string{"/proc/self/exe", OOMExecAction, strconv.Itoa(adj), "--"}
}

// SetOOMScoreAdj writes pid's oom_score_adj (-1000 to 1000); pid 0 means
// this process. Lowering it needs CAP_SYS_RESOURCE.
func SetOOMScoreAdj(pid, adj int) error {
	if adj < -1000 || adj > 1000 {
		return fmt.Errorf("%w: oom_score_adj %d is out of range -1000-1000", ErrInvalid, adj)
	}
	if err := os.WriteFile(oomPath(pid), []byte(strconv.Itoa(adj)), 0); err != nil {
		return fmt.Errorf("set oom_score_adj: %w", err)
	}
	return nil
}

// OOMScoreAdj reads pid's oom_score_adj; pid 0 means this process.
func OOMScoreAdj(pid int) (int, error) {
	b, err := os.ReadFile(oomPath(pid))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func oomPath(pid int) string {
	if pid == 0 {
		return "/proc/self/oom_score_adj"
	}
	return "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
}

// protectFromOOM lowers the shim's own OOM score adjustment to
// ShimOOMScoreAdj. That needs CAP_SYS_RESOURCE; without it (rootless, or a
// capability bounding set without it) the shim goes as low as it may
// unprivileged, to 0 if it inherited more, and says so in its log. Its
// containers start at 0 either way (see OOMExecAction).
func (s *Shim) protectFromOOM() {
	cur, err := OOMScoreAdj(0)
	if err == nil && cur <= ShimOOMScoreAdj {
		return
	}
	err = SetOOMScoreAdj(0, ShimOOMScoreAdj)
	if err == nil {
		return
	}
	if cur > 0 && SetOOMScoreAdj(0, 0) == nil {
		cur = 0
	}
	s.log.WithError(err).WithField("oom_score_adj", cur).Warn("cannot protect the shim from the OOM killer (needs CAP_SYS_RESOURCE)")
}

// childOOMScoreAdj is the value a container process should start with:
// the one its spec asks for, else 0.
func childOOMScoreAdj(specAdj *int) int {
	if specAdj != nil {
		return *specAdj
	}
	return 0
}

// OOMExec is the body of OOMExecAction; args are "ADJ -- PROG ARG...".
// PROG is looked up in PATH unless it holds a slash. On success it does
// not return.
func OOMExec(args []string) error {
	if len(args) < 3 || args[1] != "--" {
		return fmt.Errorf("%w: usage: %s ADJ -- PROG [ARG...]", ErrInvalid, OOMExecAction)
	}
	adj, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("%w: oom_score_adj %q", ErrInvalid, args[0])
	}
	// Raising it always works. Lowering below the floor a privileged
	// ancestor set needs CAP_SYS_RESOURCE: without it, go on with the value
	// we have rather than fail the container.
	SetOOMScoreAdj(0, adj)
	path, err := exec.LookPath(args[2])
	if err != nil {
		return err
	}
	err = syscall.Exec(path, args[2:], os.Environ())
	return fmt.Errorf("exec %s: %w", path, err)
}

// createRuntime is the shim's runtime for the container's create. runc and
// crun write process.oomScoreAdj for init when the config sets it, so the
// launcher only has to bring the runtime to 0, and is skipped when the
// shim already runs at 0 (it could not lower its own).
func (s *Shim) createRuntime() *oci.Runtime {
	rt := *s.rt
	rt.Launcher = nil
	if own, err := OOMScoreAdj(0); err != nil || own != 0 {
		rt.Launcher = oomLauncher(0)
	}
	return &rt
}

// execRuntime is the shim's runtime for an exec of spec: its launcher
// starts the process at the spec's oomScoreAdj (or 0), which runc and crun
// do not apply to exec'd processes themselves. oom_score_adj is inherited
// at fork, so when the shim already has that value (it could not lower
// its own, or the spec asks for the shim's) the runtime runs directly,
// saving the launcher's exec on the exec hot path.
func (s *Shim) execRuntime(spec *specs.Process) *oci.Runtime {
	rt := *s.rt
	rt.Launcher = nil
	adj := childOOMScoreAdj(spec.OOMScoreAdj)
	if own, err := OOMScoreAdj(0); err != nil || own != adj {
		rt.Launcher = oomLauncher(adj)
	}
	return &rt
}
