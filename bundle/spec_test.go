package bundle

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "TERM=xterm"}
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"nothing added", nil, base},
		{"new keys appended in order", []string{"B=2", "A=1"}, []string{"PATH=/bin", "TERM=xterm", "B=2", "A=1"}},
		{"default replaced in place", []string{"PATH=/opt/bin"}, []string{"PATH=/opt/bin", "TERM=xterm"}},
		{"later extra wins", []string{"A=1", "A=2"}, []string{"PATH=/bin", "TERM=xterm", "A=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeEnv(base, tc.extra)
			if !slices.Equal(got, tc.want) {
				t.Errorf("mergeEnv = %q, want %q", got, tc.want)
			}
		})
	}
	if base[0] != "PATH=/bin" {
		t.Errorf("mergeEnv changed its base: %q", base)
	}
}

func TestParseApplets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		out     string
		want    []string
		wantErr string
	}{
		{"plain list", "sh\ncat\nsleep\n", []string{"sh", "cat", "sleep"}, ""},
		{"busybox and repeats dropped", "busybox\nsh\nsh\nls\n", []string{"sh", "ls"}, ""},
		{"slash in a name", "sh\n../x\n", nil, "bad applet name"},
		{"dot-dot name", "sh\n..\n", nil, "bad applet name"},
		{"no sh", "cat\n", nil, "no sh applet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseApplets([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseApplets = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("parseApplets = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRootlessSpec: a rootless config maps the caller to 0 and its
// subordinate ranges from 1, drops the network namespace and the
// resources (no delegated cgroup), binds /sys read-only, keeps devpts's
// gid=5 only when gid 5 is mapped, and refuses limits without a cgroup.
func TestRootlessSpec(t *testing.T) {
	r := &Rootless{UID: 1000, GID: 1001}
	spec, _, err := Check(Options{Rootless: r, Busybox: "/bin/true", Rootfs: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l := spec.Linux
	if len(l.UIDMappings) != 1 || l.UIDMappings[0] != (specs.LinuxIDMapping{ContainerID: 0, HostID: 1000, Size: 1}) ||
		len(l.GIDMappings) != 1 || l.GIDMappings[0].HostID != 1001 {
		t.Errorf("mappings %+v %+v", l.UIDMappings, l.GIDMappings)
	}
	var types []specs.LinuxNamespaceType
	for _, n := range l.Namespaces {
		types = append(types, n.Type)
	}
	if slices.Contains(types, specs.NetworkNamespace) || !slices.Contains(types, specs.UserNamespace) {
		t.Errorf("namespaces %v: want user, no network", types)
	}
	if l.Resources != nil {
		t.Errorf("resources %+v without a delegated cgroup", l.Resources)
	}
	for _, m := range spec.Mounts {
		switch m.Destination {
		case "/sys":
			if m.Type != "none" || m.Source != "/sys" || !slices.Contains(m.Options, "rbind") || !slices.Contains(m.Options, "ro") {
				t.Errorf("/sys mount %+v: want a read-only rbind of /sys", m)
			}
		case "/dev/pts":
			if slices.Contains(m.Options, "gid=5") {
				t.Errorf("devpts keeps gid=5, unmapped: %v", m.Options)
			}
		}
	}

	r.SubUIDs = []specs.LinuxIDMapping{{ContainerID: 1, HostID: 100000, Size: 65536}}
	r.SubGIDs = r.SubUIDs
	spec, _, err = Check(Options{Rootless: r, Rootfs: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Linux.UIDMappings) != 2 || spec.Linux.GIDMappings[1].HostID != 100000 {
		t.Errorf("with subordinate ranges: %+v", spec.Linux.UIDMappings)
	}
	for _, m := range spec.Mounts {
		if m.Destination == "/dev/pts" && !slices.Contains(m.Options, "gid=5") {
			t.Errorf("devpts lost gid=5 though gid 5 is mapped: %v", m.Options)
		}
	}

	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: new(int64)}}
	if _, _, err := Check(Options{Rootless: &Rootless{UID: 1000}, Resources: res, Rootfs: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "delegated cgroup") {
		t.Errorf("limits without a cgroup: %v, want a refusal naming the delegated cgroup", err)
	}
	spec, _, err = Check(Options{Rootless: &Rootless{UID: 1000, Cgroup: true}, Resources: res, Rootfs: t.TempDir()})
	if err != nil || spec.Linux.Resources == nil || spec.Linux.Resources.Memory == nil || len(spec.Linux.Resources.Devices) != 0 {
		t.Errorf("limits with a delegated cgroup: %v %+v, want the memory limit and no device rules", err, spec.Linux.Resources)
	}
}

// TestSubIDs: ranges are read for the user's name or uid, numbered from
// container id 1 on; other users' and malformed lines are skipped.
func TestSubIDs(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(f, []byte("other:1:10\nme:100000:65536\n# c\n4242:200000:10\nme:bad:1\n"), 0o644)
	got, err := subIDs(f, "me", 4242)
	want := []specs.LinuxIDMapping{{ContainerID: 1, HostID: 100000, Size: 65536}, {ContainerID: 65537, HostID: 200000, Size: 10}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("subIDs: %+v %v, want %+v", got, err, want)
	}
	if got, err := subIDs(f+".none", "me", 1); err != nil || got != nil {
		t.Errorf("missing file: %+v %v", got, err)
	}
}
