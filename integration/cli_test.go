package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// TestCLICompletion: with two real containers in the root, completion
// offers both IDs where any container fits, only the created one for
// start, none already typed; the scripts for bash, zsh and fish come out.
func TestCLICompletion(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	e.MustTether("run", "-d", "--bundle", e.Bundle("sleep", "1000"), "alpha")
	e.MustTether("create", "--bundle", e.Bundle("true"), "beta")
	ids := func(args ...string) []string {
		out := e.MustTether(append([]string{"__complete"}, args...)...)
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, strings.SplitN(line, "\t", 2)[0])
			}
		}
		return got
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", ""}, "alpha beta"},
		{[]string{"rm", "alpha", ""}, "beta"},
		{[]string{"state", "a"}, "alpha"},
		{[]string{"start", ""}, "beta"},
		{[]string{"exec", ""}, "alpha"},
		{[]string{"state", "alpha", ""}, ""},
		{[]string{"del"}, "delete"},
		{[]string{"delete", "--fo"}, "--force"},
	} {
		if got := strings.Join(ids(tc.args...), " "); got != tc.want {
			t.Errorf("complete %q: %q, want %q", tc.args, got, tc.want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := e.MustTether("completion", shell); !strings.Contains(out, "__complete") || !strings.Contains(out, "tether") {
			t.Errorf("completion %s: not a completion script: %.200q", shell, out)
		}
	}
	e.MustTether("rm", "-f", "alpha", "beta")
}

// TestCLIVersion: version and --version name tether's version and commit,
// Go, both protocol versions and the OCI runtime's own version.
func TestCLIVersion(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		text := e.MustTether("version")
		if flag := e.MustTether("--version"); flag != text {
			t.Errorf("--version %q differs from version %q", flag, text)
		}
		for _, want := range []string{"tether:", "commit:", "go1.", "shim protocol:", "record version:", e.Runtime + " version"} {
			if !strings.Contains(text, want) {
				t.Errorf("version does not show %q:\n%s", want, text)
			}
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(e.MustTether("version", "--format", "json")), &v); err != nil {
			t.Fatal(err)
		}
		if v["shim_protocol"] != 1.0 || v["record"] != 1.0 || !strings.HasPrefix(v["oci_runtime_version"].(string), e.Runtime+" version") {
			t.Errorf("version json: %v", v)
		}
		if got := e.MustTether("version", "--format", "{{.Runtime}}"); got != e.Runtime+"\n" {
			t.Errorf("version template: %q", got)
		}
	})
}

// TestCLIRunRootfs: run without a bundle, on a rootfs folder and on the
// default busybox rootfs: -e, --env-file, -w, -u, -v (a file written
// through the bind mount is on the host), --hostname, --read-only,
// --memory (the limit is in the container's cgroup, v1 or v2), --cpus.
func TestCLIRunRootfs(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		rootfs := filepath.Join(e.Bundle("true"), "rootfs")
		vol := t.TempDir()
		os.Chmod(vol, 0o777) // the process runs as nobody
		envFile := filepath.Join(t.TempDir(), "env")
		os.WriteFile(envFile, []byte("# settings\nFROMFILE=yes\n"), 0o644)
		script := `echo "$FOO $FROMFILE"; pwd; id -u; id -g; hostname; echo through > /data/out; touch /x 2>/dev/null || echo read-only`
		r := e.Tether("run", "--rootfs", rootfs, "-e", "FOO=bar", "--env-file", envFile, "-w", "/tmp",
			"-u", "65534:65534", "-v", vol+":/data", "--hostname", "box", "--read-only", "r1", "--", "sh", "-c", script)
		want := "bar yes\n/tmp\n65534\n65534\nbox\nread-only\n"
		if r.Code != 0 || r.Stdout != want {
			t.Fatalf("run --rootfs: exit %d, stdout %q (want %q), stderr %q", r.Code, r.Stdout, want, r.Stderr)
		}
		if b, err := os.ReadFile(filepath.Join(vol, "out")); err != nil || string(b) != "through\n" {
			t.Errorf("the file written through -v: %q, %v", b, err)
		}
		if st := cliState(t, e, "r1"); st["bundle"] != filepath.Join(e.Root, "r1", "bundle") {
			t.Errorf("bundle of r1 is %v, want it in the container's folder", st["bundle"])
		}
		e.MustTether("rm", "r1")
		if _, err := os.Stat(rootfs); err != nil {
			t.Errorf("removing r1 touched its --rootfs: %v", err)
		}

		// The default busybox rootfs, --memory and --cpus, docker's form
		// (command after the ID without --), --name.
		e.MustTether("run", "-d", "--memory", "64m", "--cpus", "0.5", "--name", "mem", "sleep", "1000")
		pid := int(cliState(t, e, "mem")["pid"].(float64))
		if got := cliCgroupFile(t, pid, "memory", "memory.limit_in_bytes", "memory.max"); got != "67108864" {
			t.Errorf("memory limit in the cgroup of %d: %q, want 67108864", pid, got)
		}
		if got := cliCgroupFile(t, pid, "cpu", "cpu.cfs_quota_us", "cpu.max"); got != "50000" && got != "50000 100000" {
			t.Errorf("cpu quota in the cgroup of %d: %q, want 50000", pid, got)
		}
		folder := filepath.Join(e.Root, "mem")
		if _, err := os.Stat(filepath.Join(folder, "bundle", "rootfs", "bin", "busybox")); err != nil {
			t.Errorf("the busybox bundle is not in the container's folder: %v", err)
		}
		e.MustTether("rm", "-f", "mem")
		if _, err := os.Stat(folder); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("rm left %s (%v)", folder, err)
		}

		// Refusals leave nothing: not even the root.
		for _, args := range [][]string{
			{"run", "--rootfs", "/nonexistent/rootfs", "x", "--", "true"},
			{"run", "-v", "/nonexistent/vol:/d", "x", "--", "true"},
			{"run", "-u", "ghost", "x", "--", "true"},
			{"run", "--memory", "lots", "x", "--", "true"},
			{"run", "--bundle", e.Bundle("true"), "-e", "A=1", "x"},
			{"run", "--bundle", e.Bundle("true"), "x", "--", "true"},
		} {
			root := filepath.Join(t.TempDir(), "root")
			cmd := exec.Command(filepath.Join(e.Bin, "tether"), append([]string{"--root", root, "--runtime", e.Runtime}, args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || strings.Count(string(out), "\n") != 1 {
				t.Errorf("tether %q: %v, %q: want one line and a failure", args, err, out)
			}
			if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("tether %q made the root", args)
			}
		}
	})
}

// cliCgroupFile reads a control file of pid's cgroup: FILEV1 in the v1
// hierarchy of controller, or FILEV2 in the unified one when controller
// has no v1 hierarchy (a v2 host). It returns the first line.
func cliCgroupFile(t *testing.T, pid int, controller, fileV1, fileV2 string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var unified string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			unified = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[1], parts[2], fileV1))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(data))
			}
		}
	}
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", unified, fileV2))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func cliState(t *testing.T, e *testutil.Env, id string) map[string]any {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(e.MustTether("state", id)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCLIDockerVerbs: ps (-a, -q, --format), inspect, rm -f of several,
// unpause, logs --follow/--tail/--timestamps, exec in docker's form with
// -e/-w/-u, and today's forms beside them.
func TestCLIDockerVerbs(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	e.MustTether("run", "-d", "up", "--", "sh", "-c", "echo one; echo two; exec sleep 1000")
	e.MustTether("run", "done", "--", "true")
	e.MustTether("create", "made", "--", "true")
	if got := e.MustTether("ps", "-q"); got != "up\n" {
		t.Errorf("ps -q: %q, want only the running one", got)
	}
	if got := e.MustTether("ps", "-aq"); got != "done\nmade\nup\n" {
		t.Errorf("ps -aq: %q", got)
	}
	if got := e.MustTether("ps", "-a", "--format", "{{.ID}} {{.Status}}"); got != "done stopped\nmade created\nup running\n" {
		t.Errorf("ps --format: %q", got)
	}
	table := strings.Split(strings.TrimSpace(e.MustTether("ps")), "\n")
	if len(table) != 2 || strings.Index(table[0], "STATUS") != strings.Index(table[1], "running") {
		t.Errorf("ps table not aligned: %q", table)
	}
	if got := e.MustTether("list", "-q"); got != "done\nmade\nup\n" {
		t.Errorf("list -q: %q", got)
	}
	var arr []map[string]any
	if err := json.Unmarshal([]byte(e.MustTether("inspect", "up", "done")), &arr); err != nil || len(arr) != 2 || arr[0]["id"] != "up" || arr[1]["exit_status"] != 0.0 {
		t.Errorf("inspect: %v, %v", arr, err)
	}
	if got := e.MustTether("inspect", "--format", "{{.Status}}", "up"); got != "running\n" {
		t.Errorf("inspect --format: %q", got)
	}
	if r := e.Tether("inspect", "up", "nosuch"); r.Code != 1 || !strings.Contains(r.Stderr, "nosuch") || !strings.Contains(r.Stdout, `"up"`) {
		t.Errorf("inspect of a missing one: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
	if got := e.MustTether("exec", "-e", "X=1", "-w", "/tmp", "-u", "65534", "up", "sh", "-c", "echo $X $(pwd) $(id -u)"); got != "1 /tmp 65534\n" {
		t.Errorf("exec in docker's form: %q", got)
	}
	if got := e.MustTether("logs", "--tail", "1", "up"); got != "two\n" {
		t.Errorf("logs --tail 1: %q", got)
	}
	if got := e.MustTether("logs", "--timestamps", "up"); !strings.HasSuffix(strings.Split(got, "\n")[0], " one") {
		t.Errorf("logs --timestamps: %q", got)
	}
	if got := e.MustTether("logs", "--since", "1h", "up"); got != "one\ntwo\n" {
		t.Errorf("logs --since 1h: %q", got)
	}
	if got := e.MustTether("logs", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "up"); got != "" {
		t.Errorf("logs --since an hour ahead: %q, want nothing", got)
	}
	e.MustTether("pause", "up")
	e.MustTether("unpause", "up")
	follow := make(chan testutil.Result, 1)
	go func() { follow <- e.Tether("logs", "--follow", "up") }()
	e.MustTether("kill", "-s", "KILL", "up")
	if r := <-follow; r.Code != 0 || r.Stdout != "one\ntwo\n" {
		t.Errorf("logs --follow: exit %d, %q", r.Code, r.Stdout)
	}
	e.MustTether("rm", "-f", "up", "done", "made")
	if got := e.MustTether("ps", "-aq"); got != "" {
		t.Errorf("left after rm -f: %q", got)
	}
	if r := e.Tether("rm", "nosuch1", "nosuch2"); r.Code != 1 || strings.Count(r.Stderr, "\n") != 2 || r.Stdout != "" {
		t.Errorf("rm of two missing: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// Today's forms: global flags after the command, flags after the ID
	// up to --, --bundle with the ID last, the long names.
	b := e.Bundle("sh", "-c", "exit 3")
	if r := e.Tether("run", "old", "--bundle", b); r.Code != 3 {
		t.Errorf("run ID --bundle B: exit %d, %q", r.Code, r.Stderr)
	}
	e.MustTether("delete", "old", "--root", e.Root)
	e.MustTether("run", "-d", "--bundle", e.Bundle("sleep", "1000"), "old2")
	if got := e.MustTether("exec", "old2", "--exec-id", "named", "--env", "Y=2", "--cwd", "/tmp", "--", "sh", "-c", "echo $Y $(pwd)"); got != "2 /tmp\n" {
		t.Errorf("exec ID FLAGS -- CMD: %q", got)
	}
	e.MustTether("kill", "--signal", "KILL", "old2")
	e.Tether("wait", "old2")
	e.MustTether("delete", "--force", "old2")
}

// TestCLIWriteBundleAPI: runtime.CreateOpts.WriteBundle gets a path in
// the container's folder; its failure, or a bundle folder given as well,
// leaves no folder behind.
func TestCLIWriteBundleAPI(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	m := e.Manager()
	ctx := context.Background()
	var got string
	_, err := m.Create(ctx, "wb", "", runtime.CreateOpts{WriteBundle: func(dir string) error {
		got = dir
		return errors.New("no room")
	}})
	if err == nil || !strings.Contains(err.Error(), "no room") || !errors.Is(err, runtime.ErrInvalid) {
		t.Errorf("a failing WriteBundle: %v", err)
	}
	if got != filepath.Join(e.Root, "wb", "bundle") {
		t.Errorf("WriteBundle was given %q", got)
	}
	if _, err := os.Stat(filepath.Join(e.Root, "wb")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed WriteBundle left the folder (%v)", err)
	}
	_, err = m.Create(ctx, "wb", e.Bundle("true"), runtime.CreateOpts{WriteBundle: func(string) error { return nil }})
	if !errors.Is(err, runtime.ErrInvalid) {
		t.Errorf("a bundle folder and WriteBundle: %v, want ErrInvalid", err)
	}
	c, err := m.Create(ctx, "wb", "", runtime.CreateOpts{WriteBundle: func(dir string) error {
		return bundle.Write(dir, bundle.Options{Args: []string{"true"}})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(got); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delete left the written bundle (%v)", err)
	}
}

// TestCLIStop: stop as docker's: a container that handles TERM exits
// with its own status; one whose init ignores it (sleep as pid 1) is
// killed after --time (137, not before the grace time); a paused one is
// thawed and stopped; a created one killed at once; a stopped one left
// alone. Several at once, piped: nothing printed. The containers stay.
func TestCLIStop(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		e.MustTether("run", "-d", "stopterm", "--", "sh", "-c", `trap "exit 3" TERM; while :; do sleep 0.1; done`)
		e.MustTether("run", "-d", "stopdeaf", "--", "sleep", "1000")
		e.MustTether("run", "-d", "stoppaused", "--", "sh", "-c", `trap "exit 4" TERM; while :; do sleep 0.1; done`)
		// The trap is set once sh runs its loop: wait for its first sleep.
		for _, id := range []string{"stopterm", "stoppaused"} {
			testutil.Eventually(t, 10*time.Second, id+"'s loop to run", func() bool {
				return strings.Contains(e.MustTether("exec", id, "ps"), "sleep 0.1")
			})
		}
		e.MustTether("pause", "stoppaused")
		e.MustTether("create", "stopmade", "--", "sleep", "1000")
		start := time.Now()
		r := e.Tether("stop", "-t", "1", "stopterm", "stopdeaf", "stoppaused", "stopmade")
		took := time.Since(start)
		if r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
			t.Fatalf("stop of four, piped: exit %d, stdout %q, stderr %q; want 0 and nothing printed", r.Code, r.Stdout, r.Stderr)
		}
		if took < time.Second {
			t.Errorf("stop returned after %v: the container ignoring TERM was killed before --time 1", took)
		}
		want := "stopdeaf stopped 137\nstopmade stopped 137\nstoppaused stopped 4\nstopterm stopped 3\n"
		if got := e.MustTether("ps", "-a", "--format", "{{.ID}} {{.Status}} {{.ExitStatus}}"); got != want {
			t.Errorf("after stop: %q, want %q", got, want)
		}
		if r := e.Tether("stop", "stopterm"); r.Code != 0 || r.Stderr != "" {
			t.Errorf("stop of a stopped container: exit %d, %q", r.Code, r.Stderr)
		}
		if r := e.Tether("stop", "nosuch"); r.Code != 1 || !strings.Contains(r.Stderr, "see 'tether list'") {
			t.Errorf("stop of a missing container: exit %d, %q", r.Code, r.Stderr)
		}
		if r := e.Tether("stop", "-s", "NOSIG", "stopterm"); r.Code != 2 {
			t.Errorf("stop -s NOSIG: exit %d, %q; want 2", r.Code, r.Stderr)
		}
		e.MustTether("rm", "stopterm", "stopdeaf", "stoppaused", "stopmade")
	})
}
