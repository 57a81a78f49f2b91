package bundle

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// requireBusybox skips the test when this machine has no static busybox.
func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := findBusybox(""); err != nil {
		t.Skipf("needs a static busybox (apt-get install busybox-static): %v", err)
	}
}

// writeBundle writes a bundle with opts into a new folder and returns it.
func writeBundle(t *testing.T, opts Options) string {
	t.Helper()
	requireBusybox(t)
	dir := filepath.Join(t.TempDir(), "b")
	if err := Write(dir, opts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return dir
}

func TestWriteThenValidate(t *testing.T) {
	t.Parallel()
	opts := Options{
		Args:     []string{"sh", "-c", "echo hi"},
		Env:      []string{"FOO=bar", "TERM=dumb"},
		Terminal: true,
		Cwd:      "/tmp",
		Hostname: "box",
	}
	dir := writeBundle(t, opts)
	spec, err := Validate(dir)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	p := spec.Process
	if !slices.Equal(p.Args, opts.Args) || !p.Terminal || p.Cwd != "/tmp" || spec.Hostname != "box" {
		t.Errorf("process = %+v, hostname %q; want options %+v", p, spec.Hostname, opts)
	}
	wantEnv := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb", "FOO=bar"}
	if !slices.Equal(p.Env, wantEnv) {
		t.Errorf("env = %q, want %q", p.Env, wantEnv)
	}
	if got := readFile(t, dir, "rootfs/etc/hostname"); got != "box\n" {
		t.Errorf("etc/hostname = %q, want %q", got, "box\n")
	}
}

func TestWriteDefaults(t *testing.T) {
	t.Parallel()
	spec, err := LoadSpec(writeBundle(t, Options{}))
	if err != nil {
		t.Fatalf("LoadSpec: %v", err)
	}
	p := spec.Process
	if !slices.Equal(p.Args, []string{"sh"}) || p.Terminal || p.Cwd != "/" || spec.Hostname != "tether" {
		t.Errorf("defaults: args %q terminal %v cwd %q hostname %q", p.Args, p.Terminal, p.Cwd, spec.Hostname)
	}
	if !slices.Equal(p.Env, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}) {
		t.Errorf("env = %q", p.Env)
	}
}

func TestWriteConfigMatchesRuncSpec(t *testing.T) {
	t.Parallel()
	dir := writeBundle(t, Options{Args: []string{"true"}})
	raw := []byte(readFile(t, dir, "config.json"))
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("config.json does not parse as specs.Spec: %v", err)
	}
	again, err := json.MarshalIndent(&spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(again, '\n'), raw) {
		t.Errorf("config.json does not round-trip through specs.Spec:\n%s\n---\n%s", raw, again)
	}
	checkRuncDefaults(t, &spec)
}

// checkRuncDefaults compares spec with what `runc spec` writes.
func checkRuncDefaults(t *testing.T, spec *specs.Spec) {
	t.Helper()
	var ns []specs.LinuxNamespaceType
	for _, n := range spec.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	if want := []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount"}; !slices.Equal(ns, want) {
		t.Errorf("namespaces = %q, want %q", ns, want)
	}
	var dests []string
	for _, m := range spec.Mounts {
		dests = append(dests, m.Destination)
	}
	wantDests := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
	if !slices.Equal(dests, wantDests) {
		t.Errorf("mounts = %q, want %q", dests, wantDests)
	}
	if !slices.Contains(spec.Mounts[5].Options, "ro") {
		t.Errorf("/sys options %q lack ro", spec.Mounts[5].Options)
	}
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	c := spec.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted, "ambient": c.Ambient} {
		if !slices.Equal(set, caps) {
			t.Errorf("%s capabilities = %q, want %q", name, set, caps)
		}
	}
	wantRlimits := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}}
	if !reflect.DeepEqual(spec.Process.Rlimits, wantRlimits) || !spec.Process.NoNewPrivileges {
		t.Errorf("rlimits %+v, noNewPrivileges %v", spec.Process.Rlimits, spec.Process.NoNewPrivileges)
	}
	if *spec.Root != (specs.Root{Path: "rootfs"}) || len(spec.Linux.MaskedPaths) != 10 || len(spec.Linux.ReadonlyPaths) != 5 {
		t.Errorf("root %+v, %d masked, %d read-only paths", *spec.Root, len(spec.Linux.MaskedPaths), len(spec.Linux.ReadonlyPaths))
	}
}

func TestWriteRootfs(t *testing.T) {
	t.Parallel()
	rootfs := filepath.Join(writeBundle(t, Options{}), "rootfs")
	fi, err := os.Lstat(filepath.Join(rootfs, "bin/busybox"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("rootfs/bin/busybox: %v, %v", fi, err)
	}
	if err := checkStatic(filepath.Join(rootfs, "bin/busybox")); err != nil {
		t.Errorf("copied busybox: %v", err)
	}
	for _, applet := range []string{"sh", "sleep", "cat", "echo", "ls"} {
		target, err := os.Readlink(filepath.Join(rootfs, "bin", applet))
		if err != nil || target != "busybox" {
			t.Errorf("bin/%s -> %q (%v), want -> busybox", applet, target, err)
		}
	}
	modes := map[string]fs.FileMode{"proc": 0o555, "sys": 0o555, "dev": 0o755, "etc": 0o755, "root": 0o700,
		"tmp": 0o777 | fs.ModeSticky}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(rootfs, name))
		if err != nil || !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != want {
			t.Errorf("rootfs/%s: %v (%v), want folder mode %v", name, fi.Mode(), err, want)
		}
	}
	if got := readFile(t, rootfs, "etc/passwd"); !strings.HasPrefix(got, "root:x:0:0:") {
		t.Errorf("etc/passwd = %q", got)
	}
	if got := readFile(t, rootfs, "etc/group"); !strings.HasPrefix(got, "root:x:0:") {
		t.Errorf("etc/group = %q", got)
	}
}

func TestWriteIntoEmptyFolder(t *testing.T) {
	t.Parallel()
	requireBusybox(t)
	dir := t.TempDir()
	if err := Write(dir, Options{}); err != nil {
		t.Fatalf("Write into an empty folder: %v", err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"config.json", "rootfs"}) {
		t.Errorf("bundle holds %q, want only config.json and rootfs", got)
	}
}

func TestWriteRefusesExisting(t *testing.T) {
	t.Parallel()
	requireBusybox(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"non-empty folder", func(t *testing.T, path string) {
			mustMkdir(t, path)
			mustWrite(t, filepath.Join(path, "keep"), "data")
		}},
		{"a file", func(t *testing.T, path string) { mustWrite(t, path, "data") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b")
			tc.setup(t, path)
			err := Write(path, Options{})
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "pick another folder or remove it") {
				t.Fatalf("Write = %v, want ErrExists telling to pick another folder", err)
			}
			if _, err := os.Stat(filepath.Join(path, "config.json")); err == nil {
				t.Errorf("Write left a config.json in %s", path)
			}
		})
	}
}

func TestWriteRefusesDynamicBusybox(t *testing.T) {
	t.Parallel()
	dynamic := findDynamicELF(t)
	parent := t.TempDir()
	err := Write(filepath.Join(parent, "b"), Options{Busybox: dynamic})
	if !errors.Is(err, ErrNoBusybox) || !strings.Contains(err.Error(), "apt-get install busybox-static") ||
		!strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("Write with %s = %v, want ErrNoBusybox naming busybox-static", dynamic, err)
	}
	if got := listDir(t, parent); len(got) != 0 {
		t.Errorf("Write left %q behind", got)
	}
}

func TestWriteRefusesNonELFBusybox(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "busybox")
	mustWrite(t, script, "#!/bin/sh\necho sh\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(t.TempDir(), "b"), Options{Busybox: script})
	if !errors.Is(err, ErrNoBusybox) || !strings.Contains(err.Error(), "not an ELF") {
		t.Fatalf("Write = %v, want ErrNoBusybox saying not an ELF", err)
	}
}

func TestWriteRefusesRelativeCwd(t *testing.T) {
	t.Parallel()
	err := Write(filepath.Join(t.TempDir(), "b"), Options{Cwd: "work"})
	if err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("Write = %v, want an error about the relative cwd", err)
	}
}

// TestWriteRemovesWhatItMadeOnFailure fails Write half-way, after the
// parents and rootfs folders are made and busybox is copied, with a fake
// static busybox whose applet list holds a bad name.
func TestWriteRemovesWhatItMadeOnFailure(t *testing.T) {
	t.Parallel()
	fake := buildFakeBusybox(t, "sh\ncat\nbad/name\n")
	t.Run("new nested folder", func(t *testing.T) {
		parent := t.TempDir()
		err := Write(filepath.Join(parent, "a", "b", "bundle"), Options{Busybox: fake})
		if err == nil || !strings.Contains(err.Error(), "bad/name") {
			t.Fatalf("Write = %v, want a failure naming the bad applet", err)
		}
		if got := listDir(t, parent); len(got) != 0 {
			t.Errorf("Write left %q behind", got)
		}
	})
	t.Run("existing empty folder", func(t *testing.T) {
		dir := t.TempDir()
		if err := Write(dir, Options{Busybox: fake}); err == nil {
			t.Fatal("Write succeeded with a bad applet list")
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("Write left %q behind", got)
		}
	})
}

// buildFakeBusybox compiles a static program that prints list for
// --list, and returns its path.
func buildFakeBusybox(t *testing.T, list string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build a fake busybox")
	}
	dir := t.TempDir()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(" + strconv.Quote(list) + ") }\n"
	mustWrite(t, filepath.Join(dir, "main.go"), src)
	bin := filepath.Join(dir, "busybox")
	build := func(env ...string) ([]byte, error) {
		cmd := exec.Command(goBin, "build", "-o", bin, "main.go")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append(env, "CGO_ENABLED=0", "GO111MODULE=off")...)
		return cmd.CombinedOutput()
	}
	if _, err := build(); err != nil {
		// Users without a writable home (nobody) have no default build
		// cache: retry, slower, with a cache of our own.
		if out, err := build("GOCACHE=" + t.TempDir()); err != nil {
			t.Fatalf("build fake busybox: %v\n%s", err, out)
		}
	}
	return bin
}

// findDynamicELF returns a dynamically linked executable of the host.
func findDynamicELF(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/ls", "/usr/bin/env", "/bin/sh", "/usr/bin/true"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		progs := f.Progs
		f.Close()
		for _, prog := range progs {
			if prog.Type == elf.PT_INTERP {
				return p
			}
		}
	}
	t.Skip("no dynamically linked executable found on this host")
	return ""
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
