package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/runtime"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"golang.org/x/sys/unix"
)

// Hardening tests: hostile input, hostile neighbours, faults and load.
// Names start with TestHardening so they can be selected together.

// helperEnv makes the test binary act as a socket client instead of
// running tests (see TestHardeningHelperProcess).
const helperEnv = "TETHER_HARDENING_HELPER"

// TestHardeningHelperProcess is not a test: run as another user by
// TestHardeningPeerCred, it connects to the socket named in helperEnv,
// asks for the state and prints what happened.
func TestHardeningHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	conn, err := testutil.DialUnix(path)
	if err != nil {
		fmt.Println("connect-error:", err)
		os.Exit(0)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "{\"v\":%d,\"op\":\"state\"}\n", shimapi.Version)
	b, err := io.ReadAll(conn)
	fmt.Printf("reply: %q %v\n", b, err)
	os.Exit(0)
}

// run -d a container and return its state.
func runDetached(t *testing.T, e *testutil.Env, id, bundleDir string, extra ...string) *runtime.State {
	t.Helper()
	args := append([]string{"run", "-d", "--bundle", bundleDir}, extra...)
	e.MustTether(append(args, id)...)
	return stateOf(t, e, id)
}

func stateOf(t *testing.T, e *testutil.Env, id string) *runtime.State {
	t.Helper()
	var st runtime.State
	if err := json.Unmarshal([]byte(e.MustTether("state", id)), &st); err != nil {
		t.Fatalf("state %s: %v", id, err)
	}
	return &st
}

func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6)
}

// oneLine checks a CLI refusal: non-zero exit, one line on stderr that
// names the command, nothing on stdout.
func oneLine(t *testing.T, r testutil.Result, want string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("accepted; stdout %q", r.Stdout)
	}
	if strings.Count(r.Stderr, "\n") != 1 || !strings.HasPrefix(r.Stderr, "tether ") {
		t.Fatalf("refusal is not one line of tether's: %q", r.Stderr)
	}
	if !strings.Contains(strings.ToLower(r.Stderr), strings.ToLower(want)) {
		t.Fatalf("refusal %q does not mention %q", r.Stderr, want)
	}
}

// containerFolders lists the container folders in a root.
func containerFolders(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestHardeningInputValidation(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	good := e.Bundle("sleep", "1000")
	e.MustTether("create", "--bundle", good, "v1")
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	noConfig := filepath.Join(tmp, "noconfig")
	os.Mkdir(noConfig, 0o755)
	badJSON := filepath.Join(tmp, "badjson")
	os.Mkdir(badJSON, 0o755)
	os.WriteFile(filepath.Join(badJSON, "config.json"), []byte(`{"process": {"args": ["sh"]`), 0o644)
	noRootfs := e.Bundle("true")
	os.RemoveAll(filepath.Join(noRootfs, "rootfs"))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ID with a slash", []string{"create", "--bundle", good, "a/b"}, "ID"},
		{"ID with dots only", []string{"create", "--bundle", good, ".."}, "ID"},
		{"ID too long", []string{"create", "--bundle", good, strings.Repeat("a", 65)}, "ID"},
		{"ID with a space", []string{"state", "a b"}, "ID"},
		{"ID with a newline", []string{"delete", "a\nb"}, "ID"},
		{"exec ID", []string{"exec", "--exec-id", "../x", "v1", "--", "true"}, "ID"},
		{"signal name", []string{"kill", "--signal", "FOO", "v1"}, "signal"},
		{"signal 0", []string{"kill", "--signal", "0", "v1"}, "signal"},
		{"signal 65", []string{"kill", "--signal", "65", "v1"}, "signal"},
		{"signal -9", []string{"kill", "--signal", "-9", "v1"}, "signal"},
		{"bundle missing", []string{"create", "--bundle", filepath.Join(tmp, "none"), "b1"}, "no such folder"},
		{"bundle is a file", []string{"create", "--bundle", file, "b2"}, "not a folder"},
		{"bundle without config", []string{"create", "--bundle", noConfig, "b3"}, "config.json"},
		{"bundle with bad JSON", []string{"create", "--bundle", badJSON, "b4"}, "config.json"},
		{"bundle without rootfs", []string{"create", "--bundle", noRootfs, "b5"}, "root.path"},
		{"negative log size", []string{"create", "--bundle", good, "--log-max-size", "-1", "b6"}, "size"},
		{"log size unit", []string{"create", "--bundle", good, "--log-max-size", "10X", "b7"}, "size"},
		{"fractional log size", []string{"create", "--bundle", good, "--log-max-size", "1.5M", "b8"}, "size"},
		{"log size overflow", []string{"create", "--bundle", good, "--log-max-size", "99999999999G", "b9"}, "size"},
		{"no log files", []string{"create", "--bundle", good, "--log-max-files", "0", "b10"}, "log-max-files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oneLine(t, e.Tether(tc.args...), tc.want)
			if got := containerFolders(t, e.Root); len(got) != 1 || got[0] != "v1" {
				t.Fatalf("a refused command left folders: %v", got)
			}
		})
	}
	if st := stateOf(t, e, "v1"); st.Status != runtime.StatusCreated {
		t.Fatalf("v1 is %s after the refusals", st.Status)
	}
}

// rawShim sends raw bytes to a shim's socket and returns the reply and
// whether the shim closed the connection after it.
func rawShim(t *testing.T, dir, raw string) (string, bool) {
	t.Helper()
	conn, err := testutil.DialUnix(filepath.Join(dir, socketFile))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go conn.Write([]byte(raw)) // an oversize request may not be read whole
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no reply to %.40q: %v", raw, err)
	}
	_, err = r.ReadByte()
	return line, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestHardeningBadClients throws malformed, oversize and foreign-version
// requests and a crowd of idle connections at a real shim: each bad
// request gets an error reply and a closed connection, and meanwhile the
// shim answers others and records its container's exit.
func TestHardeningBadClients(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	id := uniqueID("bad")
	runDetached(t, e, id, e.Bundle("sh", "-c", "trap 'exit 3' TERM; sleep 1000 & wait"))
	dir := filepath.Join(e.Root, id)
	for _, tc := range []struct{ name, raw, want string }{
		{"malformed", "{\"v\":1,\"op\"::}\n", "malformed"},
		{"oversize", `{"v":1,"op":"state","exec":"` + strings.Repeat("x", shimapi.MaxRequestSize) + "\"}\n", "too large"},
		{"unknown version", "{\"v\":99,\"op\":\"state\"}\n", "protocol version 99"},
		{"unknown op", "{\"v\":1,\"op\":\"shutdown\"}\n", "unknown operation"},
		{"binary", "\x00\x01\x02\xff\n", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, closed := rawShim(t, dir, tc.raw)
			if !strings.Contains(reply, tc.want) || !strings.Contains(reply, `"code":"invalid"`) {
				t.Fatalf("reply %.200q does not say %q", reply, tc.want)
			}
			if !closed {
				t.Fatal("connection left open after an error reply")
			}
		})
	}

	// 200 clients connect and send nothing, 50 more send half a request.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := range 250 {
		c, err := testutil.DialUnix(filepath.Join(dir, socketFile))
		if err != nil {
			t.Fatal(err)
		}
		if i >= 200 {
			c.Write([]byte(`{"v":1,"op":"st`))
		}
		idle = append(idle, c)
	}
	st := stateOf(t, e, id)
	if st.Status != runtime.StatusRunning {
		t.Fatalf("state with idle clients: %+v", st)
	}
	e.MustTether("kill", id)
	if r := e.Tether("wait", id); r.Code != 3 {
		t.Fatalf("wait with idle clients: exit %d, %q", r.Code, r.Stderr)
	}
	if _, err := readExit(dir, exitFile); err != nil {
		t.Fatalf("exit record with idle clients: %v", err)
	}
	// The idle ones are closed by the shim within its request deadline.
	for _, c := range idle[len(idle)-5:] {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 512)); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("idle connection not closed by the shim: %v", err)
		}
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	testutil.Eventually(t, 30*time.Second, "connections released", func() bool {
		s, err := shimStats(context.Background(), e, id)
		return err == nil && s.Conns == 1
	})
	e.MustTether("delete", id)
}

// TestHardeningPeerCred connects as user nobody: through the 0700 folder
// it cannot reach the socket at all; with the folder and socket opened
// up, SO_PEERCRED still refuses it without an answer.
func TestHardeningPeerCred(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	id := uniqueID("cred")
	runDetached(t, e, id, e.Bundle("sleep", "1000"))
	dir := filepath.Join(e.Root, id)
	sock := filepath.Join(dir, socketFile)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("container folder mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hdir, err := os.MkdirTemp("", "thelper")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hdir)
	os.Chmod(hdir, 0o755)
	bin := filepath.Join(hdir, "helper")
	if out, err := exec.Command("cp", self, bin).CombinedOutput(); err != nil {
		t.Fatalf("copy test binary: %v %s", err, out)
	}
	asNobody := func() string {
		cmd := exec.Command(bin, "-test.run=^TestHardeningHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as nobody: %v %s", err, out)
		}
		return string(out)
	}
	if out := asNobody(); !strings.Contains(out, "connect-error") || !strings.Contains(out, "permission denied") {
		t.Fatalf("nobody reached the socket through a 0700 folder: %s", out)
	}
	// Open the path up: only the peer check is left.
	for _, p := range []string{e.Root, dir} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(sock, 0o666)
	defer os.Chmod(dir, 0o700)
	out := asNobody()
	if !strings.Contains(out, `reply: ""`) {
		t.Fatalf("nobody got an answer from the shim: %s", out)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, shimLogFile)); !bytes.Contains(log, []byte("peer uid 65534")) {
		t.Fatalf("shim log does not record the refused peer:\n%s", log)
	}
	if st := stateOf(t, e, id); st.Status != runtime.StatusRunning {
		t.Fatalf("root is not answered after the refusal: %+v", st)
	}
}

// capSysResource reports whether this process may lower oom_score_adj.
func capSysResource(t *testing.T) bool {
	return statusMask(t, "self", "CapEff")&(1<<unix.CAP_SYS_RESOURCE) != 0
}

// statusMask returns a hexadecimal mask field (CapEff, SigIgn, ...) of
// /proc/PID/status; pid may be "self".
func statusMask(t *testing.T, pid, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("%s in /proc/%s/status: %v", field, pid, err)
			}
			return mask
		}
	}
	t.Fatalf("no %s in /proc/%s/status", field, pid)
	return 0
}

func oomAdj(t *testing.T, pid int) int {
	t.Helper()
	v, err := shim.OOMScoreAdj(pid)
	if err != nil {
		t.Fatalf("oom_score_adj of %d: %v", pid, err)
	}
	return v
}

// fdTargets lists where pid's open fds point.
func fdTargets(t *testing.T, pid int) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out[e.Name()] = target
	}
	return out
}

// TestHardeningPrivileges checks, with both runtimes, that nothing in the
// state folder is world-writable, that no fd of the shim or the manager
// reaches the container, and the OOM score adjustments: the shim's below
// zero where it may, the container's its config's or 0, never the shim's.
func TestHardeningPrivileges(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) {
			e := testutil.NewEnv(t, rt)
			// A manager fd without O_CLOEXEC must not reach the container.
			leak, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(leak)
			ctx := context.Background()
			m := e.Manager()
			id := uniqueID("priv")
			c, err := m.Create(ctx, id, e.Bundle("sleep", "1000"), runtime.CreateOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			st, err := c.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			spec, _ := c.ProcessSpec([]string{"sleep", "1000"})
			xst, _, err := c.Exec(ctx, runtime.ExecOpts{ID: "x1", Process: spec})
			if err != nil {
				t.Fatal(err)
			}
			for name, pid := range map[string]int{"init": st.Pid, "exec'd process": xst.Pid} {
				// The runtime's own process (runc init, crun) holds its
				// log and sync pipe until it execve()s the command, a
				// moment after start and exec return: wait for sleep.
				testutil.Eventually(t, 30*time.Second, name+" to run sleep", func() bool {
					b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
					return string(b) == "sleep\x001000\x00"
				})
				fds := fdTargets(t, pid)
				if len(fds) != 3 {
					t.Errorf("%s has fds %v, want only 0, 1, 2", name, fds)
				}
				for fd, target := range fds {
					if strings.HasPrefix(target, "socket:") || strings.Contains(target, e.Root) || strings.HasPrefix(target, "anon_inode:") {
						t.Errorf("%s fd %s reaches %s", name, fd, target)
					}
				}
			}
			// Modes: nothing world-writable; folders private.
			filepath.WalkDir(e.Root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.Type()&fs.ModeSymlink != 0 {
					return nil
				}
				fi, err := os.Lstat(p)
				if err != nil {
					return nil
				}
				rel, _ := filepath.Rel(e.Root, p)
				if fi.Mode().Perm()&0o002 != 0 && !underPrivate(e.Root, p) {
					t.Errorf("%s is world-writable (%v) and reachable", rel, fi.Mode())
				}
				if d.IsDir() && (rel == id || strings.HasPrefix(rel, id+"/")) && fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("folder %s is %v, want 0700", rel, fi.Mode().Perm())
				}
				return nil
			})
			// OOM scores.
			shimAdj := oomAdj(t, st.ShimPid)
			if capSysResource(t) {
				if shimAdj != shim.ShimOOMScoreAdj {
					t.Errorf("shim oom_score_adj %d, want %d", shimAdj, shim.ShimOOMScoreAdj)
				}
			} else {
				t.Logf("no CAP_SYS_RESOURCE here: the shim stays at %d", shimAdj)
				if shimAdj > 0 {
					t.Errorf("shim oom_score_adj %d above 0", shimAdj)
				}
				if log, _ := os.ReadFile(filepath.Join(c.Dir(), shimLogFile)); !bytes.Contains(log, []byte("cannot protect the shim")) {
					t.Errorf("shim log does not say it could not protect itself:\n%s", log)
				}
			}
			if v := oomAdj(t, st.Pid); v != 0 {
				t.Errorf("init oom_score_adj %d, want 0 (the shim has %d)", v, shimAdj)
			}
			if v := oomAdj(t, xst.Pid); v != 0 {
				t.Errorf("exec'd oom_score_adj %d, want 0", v)
			}
			// A config that asks for a value gets it, in init and execs.
			b := e.Bundle("sleep", "1000")
			testutil.EditSpec(t, b, func(s *specs.Spec) { v := 200; s.Process.OOMScoreAdj = &v })
			c2, err := m.Create(ctx, id+"o", b, runtime.CreateOpts{})
			if err != nil {
				t.Fatal(err)
			}
			c2.Start(ctx)
			st2, _ := c2.State(ctx)
			spec2, _ := c2.ProcessSpec([]string{"sleep", "1000"})
			x2, _, err := c2.Exec(ctx, runtime.ExecOpts{ID: "x2", Process: spec2})
			if err != nil {
				t.Fatal(err)
			}
			if a, b := oomAdj(t, st2.Pid), oomAdj(t, x2.Pid); a != 200 || b != 200 {
				t.Errorf("config oomScoreAdj 200: init %d, exec'd %d", a, b)
			}
			for _, cc := range []*runtime.Container{c, c2} {
				if err := cc.Delete(ctx, true); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// underPrivate reports whether p lies below a folder under root that only
// its owner may enter (the OCI runtimes' own state, such as runc's
// world-writable exec.fifo, is out of reach there).
func underPrivate(root, p string) bool {
	for d := filepath.Dir(p); len(d) > len(root); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o011 == 0 {
			return true
		}
	}
	return false
}

// guardRoot cleans a root that testutil.NewEnv does not own (a long path,
// a tmpfs): every shim and init killed by recorded identity, every runtime
// container deleted.
func guardRoot(t *testing.T, root string) {
	t.Cleanup(func() {
		ents, _ := os.ReadDir(root)
		for _, ent := range ents {
			dir := filepath.Join(root, ent.Name())
			for _, name := range []string{shimPidFile, initPidFile} {
				if id, err := readPid(dir, name); err == nil {
					id.Signal(syscall.SIGKILL)
				}
			}
			if rec, err := readRecord(dir); err == nil {
				rt := &oci.Runtime{Command: rec.Runtime, Root: rec.RuntimeRoot}
				rt.Delete(context.Background(), rec.ID, &oci.DeleteOpts{Force: true})
			}
		}
		for _, r := range []string{"runc", "crun"} {
			rt := &oci.Runtime{Command: r, Root: filepath.Join(root, ".oci", r)}
			list, _ := rt.List(context.Background())
			for _, st := range list {
				rt.Delete(context.Background(), st.ID, &oci.DeleteOpts{Force: true})
			}
		}
	})
}

// TestHardeningLongRoot runs a container's life, terminal included, in a
// root whose socket paths are past the 108-byte limit of an address.
func TestHardeningLongRoot(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) {
			base := testutil.NewEnv(t, rt)
			root := filepath.Join(base.Root, strings.Repeat("l", 60), strings.Repeat("m", 60))
			if err := os.MkdirAll(root, 0o711); err != nil {
				t.Fatal(err)
			}
			guardRoot(t, root)
			e := &testutil.Env{T: t, Root: root, Runtime: rt, Bin: base.Bin}
			id := "long"
			if n := len(filepath.Join(root, id, socketFile)); n <= 108 {
				t.Fatalf("socket path of %d bytes is not long enough", n)
			}
			runDetached(t, e, id, e.Bundle("sh", "-c", "echo hello; sleep 1000"))
			if out := e.MustTether("exec", id, "--", "echo", "from-exec"); out != "from-exec\n" {
				t.Fatalf("exec output %q", out)
			}
			testutil.Eventually(t, 10*time.Second, "log", func() bool {
				return e.Tether("logs", id).Stdout == "hello\n"
			})
			tty := e.BundleWith(bundle.Options{Args: []string{"sh", "-c", "tty; sleep 1000"}, Terminal: true})
			runDetached(t, e, "longtty", tty, "-t")
			testutil.Eventually(t, 10*time.Second, "terminal output", func() bool {
				return strings.Contains(e.Tether("logs", "longtty").Stdout, "/dev/pts/")
			})
			if out := e.MustTether("exec", "-t", "longtty", "--", "tty"); !strings.Contains(out, "/dev/pts/") {
				t.Fatalf("exec -t output %q", out)
			}
			e.MustTether("delete", "--force", id)
			e.MustTether("delete", "--force", "longtty")
			if left := containerFolders(t, root); len(left) != 0 {
				t.Fatalf("left: %v", left)
			}
		})
	}
}

// TestHardeningLoad runs 100 clients at once, each asking one of 50
// containers for its state, running an exec in it and waiting for its
// exit, while the containers are started and then stopped with a signal
// of their own (so each has its own exit status). Every answer must be
// right, and afterwards no shim holds more fds or goroutines than it did
// once its container had started.
func TestHardeningLoad(t *testing.T) {
	const containers, clients = 50, 100
	e := testutil.NewEnv(t, "runc")
	m := e.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := e.Bundle("sh", "-c", "trap 'exit 11' USR1; trap 'exit 12' USR2; trap 'exit 13' HUP; trap 'exit 14' TERM; sleep 1000 & wait")
	sigs := []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGTERM}
	type box struct {
		id       string
		started  chan struct{}
		execs    sync.WaitGroup // the clients' execs in this container
		state    *runtime.State
		base     runtime.Stats
		baseFDs  int
		want     int
		bundle   string
		startErr error
	}
	boxes := make([]*box, containers)
	for i := range boxes {
		boxes[i] = &box{id: fmt.Sprintf("load%02d", i), started: make(chan struct{}), want: 11 + i%4,
			// a cgroup of its own: 50 runc creates at once in one cgroup
			// race over its device filter on v2 (BPF_PROG_ATTACH: ENOENT)
			bundle: e.SameBundle(b)}
		boxes[i].execs.Add(clients / containers)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*clients+containers)
	sem := make(chan struct{}, 4)
	for i, bx := range boxes { // start them, a few at a time
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(bx.started)
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := m.Create(ctx, bx.id, bx.bundle, runtime.CreateOpts{})
			if err == nil {
				err = c.Start(ctx)
			}
			if err == nil {
				bx.state, err = c.State(ctx)
			}
			if err == nil {
				var st *runtime.Stats
				st, err = c.Stats(ctx)
				if st != nil {
					bx.base, bx.baseFDs = *st, testutil.FDCount(t, bx.state.ShimPid)
				}
			}
			bx.startErr = err
			if err != nil {
				errs <- fmt.Errorf("start %s: %w", bx.id, err)
				bx.execs.Add(-clients / containers)
				return
			}
			// Stop it once its clients have run their execs.
			go func() {
				bx.execs.Wait()
				if err := c.Kill(ctx, sigs[i%4], false); err != nil {
					errs <- fmt.Errorf("kill %s: %w", bx.id, err)
				}
			}()
		}()
	}
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bx := boxes[k%containers]
			<-bx.started
			if bx.startErr != nil {
				return
			}
			if err := oneClient(ctx, m, bx.id, bx.state, k, bx.want, &bx.execs); err != nil {
				errs <- fmt.Errorf("client %d on %s: %w", k, bx.id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	var fdsBefore, fdsAfter, grBefore, grAfter int
	for _, bx := range boxes {
		st, err := shimStats(ctx, e, bx.id)
		if err != nil {
			t.Fatalf("stats of %s: %v", bx.id, err)
		}
		fds := testutil.FDCount(t, bx.state.ShimPid)
		fdsBefore, fdsAfter = fdsBefore+bx.baseFDs, fdsAfter+fds
		grBefore, grAfter = grBefore+bx.base.Goroutines, grAfter+st.Goroutines
		if fds > bx.baseFDs || st.FDs > bx.base.FDs || st.Goroutines > bx.base.Goroutines || st.Conns != 1 {
			t.Errorf("%s leaks: fds %d -> %d (/proc), %d -> %d (shim), goroutines %d -> %d, conns %d",
				bx.id, bx.baseFDs, fds, bx.base.FDs, st.FDs, bx.base.Goroutines, st.Goroutines, st.Conns)
		}
	}
	t.Logf("%d shims, /proc/<shim>/fd total: %d once started, %d after %d clients and the stop; goroutines %d -> %d",
		containers, fdsBefore, fdsAfter, clients, grBefore, grAfter)
	for _, bx := range boxes {
		c, err := m.Load(ctx, bx.id)
		if err == nil {
			err = c.Delete(ctx, false)
		}
		if err != nil {
			t.Errorf("delete %s: %v", bx.id, err)
		}
	}
}

// oneClient is one client of the load test: state, exec, wait, state.
func oneClient(ctx context.Context, m *runtime.Manager, id string, started *runtime.State, k, want int, execs *sync.WaitGroup) error {
	c, err := m.Load(ctx, id)
	if err != nil {
		execs.Done()
		return err
	}
	st, err := c.State(ctx)
	if err == nil && (st.ID != id || st.Pid != started.Pid || st.ShimPid != started.ShimPid || st.Status != runtime.StatusRunning) {
		err = fmt.Errorf("state %+v, started as %+v", st, started)
	}
	if err != nil {
		execs.Done()
		return err
	}
	err = loadExec(ctx, c, k)
	execs.Done()
	if err != nil {
		return err
	}
	exit, err := c.Wait(ctx)
	if err != nil {
		return err
	}
	if exit.Status != want || exit.Pid != started.Pid {
		return fmt.Errorf("wait: %+v, want status %d of pid %d", exit, want, started.Pid)
	}
	st, err = c.State(ctx)
	if err == nil && (st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != want) {
		err = fmt.Errorf("state after exit %+v", st)
	}
	return err
}

// loadExec runs echo in the container, attached, and checks its output.
func loadExec(ctx context.Context, c *runtime.Container, k int) error {
	token := fmt.Sprintf("token-%d", k)
	spec, err := c.ProcessSpec([]string{"echo", token})
	if err != nil {
		return err
	}
	_, stream, err := c.Exec(ctx, runtime.ExecOpts{ID: fmt.Sprintf("x%d", k), Process: spec, Attach: true})
	if err != nil {
		return err
	}
	defer stream.Close()
	var out, errb bytes.Buffer
	exit, err := stream.Copy(&out, &errb)
	if err != nil {
		return err
	}
	if exit == nil || exit.Status != 0 || out.String() != token+"\n" {
		return fmt.Errorf("exec: exit %+v, stdout %q, stderr %q", exit, out.String(), errb.String())
	}
	return nil
}

// TestHardeningFolderDeleted removes a running container's state folder
// under its shim: the shim restores it, the container stays manageable,
// its exit is recorded and delete cleans up.
func TestHardeningFolderDeleted(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) {
			e := testutil.NewEnv(t, rt)
			id := uniqueID("gone")
			st := runDetached(t, e, id, e.Bundle("sh", "-c", "trap 'exit 9' TERM; while true; do echo tick; sleep 0.1; done"))
			dir := filepath.Join(e.Root, id)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, "the folder restored", func() bool {
				_, err := os.Stat(filepath.Join(dir, socketFile))
				return err == nil
			})
			st2 := stateOf(t, e, id)
			if st2.Status != runtime.StatusRunning || st2.Pid != st.Pid || st2.ShimPid != st.ShimPid {
				t.Fatalf("after restore: %+v, before: %+v", st2, st)
			}
			testutil.Eventually(t, 10*time.Second, "output in the new log", func() bool {
				return strings.Contains(e.Tether("logs", id).Stdout, "tick")
			})
			if out := e.MustTether("exec", id, "--", "echo", "still"); out != "still\n" {
				t.Fatalf("exec after restore: %q", out)
			}
			e.MustTether("kill", id)
			if r := e.Tether("wait", id); r.Code != 9 {
				t.Fatalf("wait after restore: %d %q", r.Code, r.Stderr)
			}
			if exit, err := readExit(dir, exitFile); err != nil || exit.Status != 9 {
				t.Fatalf("exit record after restore: %+v %v", exit, err)
			}
			if log, _ := os.ReadFile(filepath.Join(dir, shimLogFile)); !bytes.Contains(log, []byte("restored")) {
				t.Errorf("the new shim log does not tell of the restore:\n%s", log)
			}
			e.MustTether("delete", "--force", id)
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("folder after delete: %v", err)
			}
			sid := proc.Identity{Pid: st.ShimPid}
			testutil.Eventually(t, 10*time.Second, "shim gone", func() bool {
				_, err := os.Stat(fmt.Sprintf("/proc/%d", sid.Pid))
				return err != nil || !processNamed(sid.Pid, "tether-shim")
			})
		})
	}
}

func processNamed(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == name
}

// TestHardeningDiskFull runs a container that writes far more than its
// root's tmpfs holds: the shim keeps draining (the container is never
// blocked), drops what it cannot write, and still records the exit.
func TestHardeningDiskFull(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	if err := unix.Mount("tmpfs", e.Root, "tmpfs", 0, "size=2m,mode=0711"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(e.Root, unix.MNT_DETACH) })
	guardRoot(t, e.Root) // runs before the unmount
	id := uniqueID("full")
	runDetached(t, e, id, e.Bundle("sh", "-c", "yes 0123456789abcdef0123456789abcdef | head -c 20000000; echo done >&2; exit 7"))
	cmd := e.Command("wait", id)
	out, err := runWithin(cmd, 90*time.Second)
	if err == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("wait: %v %q (the container must not block on a full disk)", err, out)
	}
	var fsst unix.Statfs_t
	unix.Statfs(e.Root, &fsst)
	t.Logf("tmpfs free after the run: %d blocks of %d", fsst.Bavail, fsst.Blocks)
	if fsst.Bavail > fsst.Blocks/10 {
		t.Fatalf("the tmpfs was not filled (%d of %d blocks free)", fsst.Bavail, fsst.Blocks)
	}
	exit, err := readExit(filepath.Join(e.Root, id), exitFile)
	if err != nil || exit.Status != 7 {
		t.Fatalf("exit record on a full disk: %+v %v", exit, err)
	}
	if st := stateOf(t, e, id); st.Status != runtime.StatusStopped || *st.ExitStatus != 7 {
		t.Fatalf("state: %+v", st)
	}
	e.MustTether("delete", "--force", id)
	if left := containerFolders(t, e.Root); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

// runWithin runs cmd, killing it past d.
func runWithin(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.String(), err
}

// copyRuntime puts a copy of the runtime binary in a folder of its own
// and returns its path; removing it later plays "the runtime was
// uninstalled".
func copyRuntime(t *testing.T, name string) string {
	t.Helper()
	src, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v %s", src, err, out)
	}
	return dst
}

// TestHardeningRuntimeRemoved removes the OCI runtime binary between
// create and delete: delete --force still kills init by identity and
// removes everything; a stopped container deletes without --force.
func TestHardeningRuntimeRemoved(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) {
			e := testutil.NewEnv(t, rt)
			bin := copyRuntime(t, rt)
			tether := func(args ...string) testutil.Result {
				return e.Tether(append([]string{"--runtime", bin}, args...)...)
			}
			b := e.Bundle("sleep", "1000")
			id, stopped := uniqueID("rm"), uniqueID("rms")
			// With its binary gone the runtime cannot remove the containers'
			// cgroups (a documented limit); the test removes the empty ones.
			t.Cleanup(func() { removeEmptyCgroups(id, stopped) })
			for _, c := range []string{id, stopped} {
				if r := tether("run", "-d", "--bundle", e.SameBundle(b), c); r.Code != 0 {
					t.Fatalf("run %s: %s", c, r.Stderr)
				}
			}
			st := stateOf(t, e, id)
			init, err := proc.Identify(st.Pid)
			if err != nil {
				t.Fatal(err)
			}
			e.MustTether("kill", "--signal", "KILL", stopped)
			e.Tether("wait", stopped)
			if err := os.Remove(bin); err != nil {
				t.Fatal(err)
			}
			if r := e.Tether("pause", id); r.Code == 0 || !strings.Contains(r.Stderr, "install it") {
				t.Fatalf("pause with the runtime gone: %d %q", r.Code, r.Stderr)
			}
			if r := tether("delete", "--force", id); r.Code != 0 {
				t.Fatalf("delete --force with the runtime gone: %q", r.Stderr)
			}
			if init.Alive() {
				t.Fatal("init still runs after delete --force")
			}
			if r := tether("delete", stopped); r.Code != 0 {
				t.Fatalf("delete of a stopped container with the runtime gone: %q", r.Stderr)
			}
			if left := containerFolders(t, e.Root); len(left) != 0 {
				t.Fatalf("left: %v", left)
			}
			for _, c := range []string{id, stopped} {
				if _, err := os.Stat(filepath.Join(e.Root, ".oci", rt, c)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("runtime state of %s left: %v", c, err)
				}
			}
		})
	}
}

// removeEmptyCgroups removes the (empty) cgroup folders named after the
// given container IDs, down to four levels under each cgroup mount.
func removeEmptyCgroups(ids ...string) {
	mounts, _ := testutil.CgroupMountPoints()
	for _, mnt := range mounts {
		for _, id := range ids {
			for depth := 1; depth <= 4; depth++ {
				dirs, _ := filepath.Glob(mnt + strings.Repeat("/*", depth-1) + "/" + id)
				for _, d := range dirs {
					os.Remove(d) // rmdir: only an empty cgroup goes
				}
			}
		}
	}
}

// faultRuntime writes a wrapper around the real runtime (containerd's
// runc-fp idea) that misbehaves in create as script says, and returns its
// path. It is named like the runtime, so its state goes to the usual
// ROOT/.oci/NAME.
func faultRuntime(t *testing.T, rt, script string) (path, dir string) {
	return faultRuntimeAt(t, rt, "create", script)
}

// faultRuntimeAt is faultRuntime for the runtime subcommand op.
func faultRuntimeAt(t *testing.T, rt, op, script string) (path, dir string) {
	t.Helper()
	real, err := exec.LookPath(rt)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	path = filepath.Join(dir, rt)
	body := fmt.Sprintf(`#!/bin/bash
REAL=%q
STATE=%q
op=
for a in "$@"; do
	case "$a" in create|start|delete|exec|kill|state|pause|resume) op=$a; break;; esac
done
if [ "$op" = %s ]; then
%s
fi
exec "$REAL" "$@"
`, real, dir, op, script)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

// checkNothingLeft asserts a failed create left no folder and no runtime
// container, and that the ID can be used again.
func checkNothingLeft(t *testing.T, e *testutil.Env, rt, id string) {
	t.Helper()
	if left := containerFolders(t, e.Root); len(left) != 0 {
		t.Fatalf("folders left: %v", left)
	}
	list, err := (&oci.Runtime{Command: rt, Root: filepath.Join(e.Root, ".oci", rt)}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("runtime containers left: %+v", list)
	}
	runDetached(t, e, id, e.Bundle("true"))
	e.Tether("wait", id)
	e.MustTether("delete", id)
}

// TestHardeningRuntimeKilledInCreate SIGKILLs the runtime during create
// at three points: before it does anything, half-way (a createRuntime
// hook kills it), and after it made the container. Each create fails
// with one clear line and leaves nothing behind.
func TestHardeningRuntimeKilledInCreate(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		for _, tc := range []struct {
			name, script string
			hook         bool
		}{
			{name: "before", script: `kill -9 $$`},
			{name: "midway", hook: true},
			{name: "after", script: `"$REAL" "$@"; for a in "$@"; do [ "$prev" = --pid-file ] && cp "$a" "$STATE/leaked.pid"; prev=$a; done; kill -9 $$`},
		} {
			t.Run(rt+"/"+tc.name, func(t *testing.T) {
				e := testutil.NewEnv(t, rt)
				bin, state := faultRuntime(t, rt, tc.script)
				b := e.Bundle("sleep", "1000")
				if tc.hook {
					bin, _ = exec.LookPath(rt)
					testutil.EditSpec(t, b, func(s *specs.Spec) {
						s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "kill -9 $PPID"}}}}
					})
				}
				id := uniqueID("kc")
				r := e.Tether("--runtime", bin, "create", "--bundle", b, id)
				oneLine(t, r, "create")
				if !strings.Contains(r.Stderr, "137") && !strings.Contains(r.Stderr, "killed") && !strings.Contains(r.Stderr, "signal") {
					t.Errorf("the error does not say the runtime was killed: %q", r.Stderr)
				}
				if b, err := os.ReadFile(filepath.Join(state, "leaked.pid")); err == nil {
					pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
					testutil.Eventually(t, 10*time.Second, "the made container's init gone", func() bool {
						return !processNamed(pid, "runc:[2:INIT]") && !processNamed(pid, "sleep") && !processNamed(pid, "crun")
					})
				} else if tc.name == "after" {
					t.Fatalf("the wrapper did not record the container it made: %v", err)
				}
				checkNothingLeft(t, e, rt, id)
			})
		}
	}
}

// TestHardeningCreateHangs makes the runtime's create hang (with a child
// of its own): the shim answers state meanwhile ("creating"), and after
// the runtime deadline the runtime and its child are killed, the state
// removed and Create returns a clear error.
func TestHardeningCreateHangs(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) {
			e := testutil.NewEnv(t, rt)
			bin, state := faultRuntime(t, rt, `sleep 3600 & echo $! > "$STATE/child.pid"; wait`)
			m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: bin, RuntimeTimeout: 4 * time.Second,
				ShimBinary: filepath.Join(e.Bin, "tether-shim")})
			if err != nil {
				t.Fatal(err)
			}
			id := uniqueID("hang")
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := m.Create(context.Background(), id, e.Bundle("sleep", "1000"), runtime.CreateOpts{})
				done <- err
			}()
			var child proc.Identity
			testutil.Eventually(t, 20*time.Second, "the hung create's child", func() bool {
				b, err := os.ReadFile(filepath.Join(state, "child.pid"))
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil || pid == 0 {
					return false
				}
				child, err = proc.Identify(pid)
				return err == nil
			})
			st, err := shimState(context.Background(), e, id)
			if err != nil || st.Status != runtime.StatusCreating {
				t.Fatalf("state while create hangs: %+v %v", st, err)
			}
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Create did not return after the runtime deadline")
			}
			if err == nil || !strings.Contains(err.Error(), "did not finish in time") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Create of a hung runtime: %v", err)
			}
			t.Logf("Create failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if child.Alive() {
				t.Fatal("the hung runtime's child still runs")
			}
			checkNothingLeft(t, e, rt, id)
		})
	}
}

// TestHardeningRuntimeHangsWhileRunning makes the runtime hang in pause
// of a running container: the shim keeps answering state and exec
// meanwhile, the pause fails after the deadline, and the container is
// still there to delete.
func TestHardeningRuntimeHangsWhileRunning(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	bin, _ := faultRuntimeAt(t, "runc", "pause", `sleep 3600 & wait`)
	m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: bin, RuntimeTimeout: 4 * time.Second,
		ShimBinary: filepath.Join(e.Bin, "tether-shim")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := m.Create(ctx, uniqueID("hp"), e.Bundle("sleep", "1000"), runtime.CreateOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	paused := make(chan error, 1)
	go func() { paused <- c.Pause(ctx) }()
	for i := range 20 { // while pause hangs
		st, err := c.State(ctx)
		if err != nil || st.Status != runtime.StatusRunning {
			t.Fatalf("state %d while pause hangs: %+v %v", i, st, err)
		}
	}
	spec, _ := c.ProcessSpec([]string{"true"})
	if _, _, err := c.Exec(ctx, runtime.ExecOpts{ID: "during", Process: spec}); err != nil {
		t.Fatalf("exec while pause hangs: %v", err)
	}
	select {
	case err = <-paused:
	case <-time.After(60 * time.Second):
		t.Fatal("pause did not fail after the runtime deadline")
	}
	if err == nil || !strings.Contains(err.Error(), "did not finish in time") {
		t.Fatalf("pause of a hung runtime: %v", err)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
}

// TestHardeningRuntimeEnv: the shim's own Go tuning (GOMAXPROCS=1,
// GOGC=50, set for it by its start helper) is not passed on to the OCI
// runtime it runs, for create and exec alike: runc is a Go program and
// should run with its defaults.
func TestHardeningRuntimeEnv(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	for _, op := range []string{"create", "exec"} {
		t.Run(op, func(t *testing.T) {
			bin, dir := faultRuntimeAt(t, "runc", op, `env > "$STATE/env"`)
			m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: bin, ShimBinary: filepath.Join(e.Bin, "tether-shim")})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			c, err := m.Create(ctx, uniqueID("env"+op), e.Bundle("sleep", "1000"), runtime.CreateOpts{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Delete(context.Background(), true)
			if op == "exec" {
				if err := c.Start(ctx); err != nil {
					t.Fatal(err)
				}
				spec, _ := c.ProcessSpec([]string{"true"})
				if _, _, err := c.Exec(ctx, runtime.ExecOpts{ID: "e", Process: spec}); err != nil {
					t.Fatal(err)
				}
			}
			env, err := os.ReadFile(filepath.Join(dir, "env"))
			if err != nil {
				t.Fatalf("the wrapper did not record the runtime's environment: %v", err)
			}
			for line := range strings.Lines(string(env)) {
				if strings.HasPrefix(line, "GOMAXPROCS=") || strings.HasPrefix(line, "GOGC=") {
					t.Errorf("the runtime's %s ran with the shim's %s", op, strings.TrimSpace(line))
				}
			}
			if !strings.Contains(string(env), "PATH=") {
				t.Fatalf("recorded environment looks empty:\n%s", env)
			}
		})
	}
}
