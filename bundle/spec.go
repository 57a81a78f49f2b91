package bundle

import (
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociVersion is written to config.json. It is not specs.Version (1.3.0 in
// the vendored types) because crun 1.8.1, as shipped by Debian 12, refuses
// any version above 1.1 with "unknown version specified"; everything this
// package writes is already defined by runtime-spec 1.0.2.
const ociVersion = "1.0.2"

// Defaults used when the matching Options field is empty.
const (
	defaultCwd      = "/"
	defaultHostname = "tether"
)

// defaultArgs is the process run when Options.Args is empty, as `runc spec`.
var defaultArgs = []string{"sh"}

// defaultEnv is the environment every process starts from.
var defaultEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}

// newSpec builds the config.json content for opts: the defaults of
// `runc spec`, with the process and hostname taken from opts.
func newSpec(opts Options) (*specs.Spec, error) {
	proc, err := newProcess(opts)
	if err != nil {
		return nil, err
	}
	for _, m := range opts.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("mount destination %q is not absolute: give a path starting with /", m.Destination)
		}
	}
	linux := defaultLinux()
	if r := opts.Resources; r != nil {
		res := *r
		if len(res.Devices) == 0 {
			res.Devices = linux.Resources.Devices
		}
		linux.Resources = &res
	}
	spec := &specs.Spec{
		Version:  ociVersion,
		Process:  proc,
		Root:     &specs.Root{Path: "rootfs", Readonly: opts.ReadOnly},
		Hostname: orDefault(opts.Hostname, defaultHostname),
		Mounts:   append(defaultMounts(), opts.Mounts...),
		Linux:    linux,
	}
	if opts.Rootless != nil {
		if err := rootlessSpec(spec, opts.Rootless, opts.Resources != nil); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// newProcess builds the container's init process from opts.
func newProcess(opts Options) (*specs.Process, error) {
	cwd := orDefault(opts.Cwd, defaultCwd)
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("working directory %q is not absolute: give a path starting with /", cwd)
	}
	args := opts.Args
	if len(args) == 0 {
		args = defaultArgs
	}
	return &specs.Process{
		Terminal:        opts.Terminal,
		User:            opts.User,
		Args:            append([]string(nil), args...),
		Env:             mergeEnv(defaultEnv, opts.Env),
		Cwd:             cwd,
		Capabilities:    defaultCapabilities(),
		Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		NoNewPrivileges: true,
	}, nil
}

// mergeEnv returns base followed by extra, where an extra KEY=value
// replaces the base entry with the same KEY instead of repeating it.
func mergeEnv(base, extra []string) []string {
	env := append([]string(nil), base...)
	index := make(map[string]int, len(env))
	for i, kv := range env {
		index[envKey(kv)] = i
	}
	for _, kv := range extra {
		if i, ok := index[envKey(kv)]; ok {
			env[i] = kv
			continue
		}
		index[envKey(kv)] = len(env)
		env = append(env, kv)
	}
	return env
}

// envKey returns the name part of a KEY=value entry.
func envKey(kv string) string {
	key, _, _ := strings.Cut(kv, "=")
	return key
}

// defaultCapabilities is the capability set of `runc spec`.
func defaultCapabilities() *specs.LinuxCapabilities {
	caps := func() []string {
		return []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	}
	return &specs.LinuxCapabilities{
		Bounding:  caps(),
		Effective: caps(),
		Permitted: caps(),
		Ambient:   caps(),
	}
}

// defaultMounts is the mount list of `runc spec`.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
			Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs",
			Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// defaultLinux is the linux section of `runc spec`: deny all devices
// (the runtime adds its default allow list), five namespaces, and the
// masked and read-only paths.
func defaultLinux() *specs.Linux {
	return &specs.Linux{
		Resources: &specs.LinuxResources{
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		},
		Namespaces: []specs.LinuxNamespace{
			{Type: specs.PIDNamespace},
			{Type: specs.NetworkNamespace},
			{Type: specs.IPCNamespace},
			{Type: specs.UTSNamespace},
			{Type: specs.MountNamespace},
		},
		MaskedPaths: []string{
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
			"/proc/sched_debug", "/sys/firmware", "/proc/scsi",
		},
		ReadonlyPaths: []string{
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
		},
	}
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
