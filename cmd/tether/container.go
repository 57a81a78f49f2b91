package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/runtime"
)

// containerSourceHelp says where create and run take the container from.
const containerSourceHelp = `
The container comes from one of:
  --bundle DIR   an OCI bundle (config.json and its rootfs), run as it is;
  --rootfs DIR   a root filesystem folder: tether writes the config.json;
  neither        a busybox rootfs, as 'tether bundle' makes it, written
                 inside the container's folder and removed with it (the
                 current folder is used as the bundle instead when it holds
                 a config.json and no command or container flag is given,
                 as before).
The command after the ID (default sh) and -e, --env-file, -w, -u, -v,
--hostname, --memory, --cpus and --read-only shape the config.json tether
writes; with --bundle they are refused (edit the bundle's config.json).
The ID is the first argument, or --name.`

// createFlags are the flags create and run share.
type createFlags struct {
	bundle      string
	tty, stdin  bool
	logMaxSize  string
	logMaxFiles int
	name        string
	rm          bool

	rootfs, workdir, user, hostname, memory string
	env, envFiles, volumes                  []string
	cpus                                    float64
	readOnly                                bool

	cmd *cobra.Command
}

// specFlags are the flags that shape a config.json tether writes.
var specFlags = []string{"env", "env-file", "workdir", "user", "volume", "hostname", "memory", "cpus", "read-only"}

func (f *createFlags) register(cmd *cobra.Command) {
	f.cmd = cmd
	cmd.Flags().SetInterspersed(false) // what follows the ID is the command
	fs := cmd.Flags()
	fs.StringVar(&f.bundle, "bundle", "", "OCI bundle folder to run as it is (default: see above)")
	fs.StringVar(&f.rootfs, "rootfs", "", "root filesystem folder; tether writes the config.json")
	fs.StringVar(&f.name, "name", "", "the container's ID, instead of the first argument")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fs.BoolVarP(&f.stdin, "interactive", "i", false, "keep stdin open")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set KEY=VALUE in the environment (repeatable)")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read KEY=VALUE lines from a file (repeatable; # comments)")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working folder in the container (default /)")
	fs.StringVarP(&f.user, "user", "u", "", "UID[:GID] (numbers, or names from the rootfs's /etc/passwd and /etc/group) (default 0:0)")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount HOST:CTR[:ro] (repeatable)")
	fs.StringVar(&f.hostname, "hostname", "", "the container's hostname (default tether)")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit, such as 64m or 1g (default none)")
	fs.Float64Var(&f.cpus, "cpus", 0, "CPU limit in CPUs, such as 0.5 (default none)")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fs.StringVar(&f.logMaxSize, "log-max-size", "0", "rotate the output log past this size (e.g. 10M); 0 never")
	fs.IntVar(&f.logMaxFiles, "log-max-files", 1, "rotated output logs kept")
	fs.BoolVar(&f.rm, "rm", false, "remove the container once it has exited (done by its shim: no tether need run then)")
}

// idAndCommand reads the container ID (first argument or --name) and the
// command after it.
func (f *createFlags) idAndCommand(cmd *cobra.Command, args []string) (string, []string, error) {
	id, command, err := splitCommand(cmd, args, f.name == "")
	if err != nil {
		return "", nil, err
	}
	if f.name != "" {
		id = f.name
	}
	return id, command, nil
}

// opts checks the flags and returns the bundle folder and the create
// options: with --bundle (or a bundle in the current folder) the folder;
// otherwise "" and a WriteBundle that writes the bundle inside the
// container's folder. Nothing is written here.
func (f *createFlags) opts(command []string) (string, runtime.CreateOpts, error) {
	size, err := parseSize(f.logMaxSize)
	if err != nil {
		return "", runtime.CreateOpts{}, usageError{error: err}
	}
	if f.logMaxFiles < 1 {
		return "", runtime.CreateOpts{}, usagef("--log-max-files %d: keep at least 1", f.logMaxFiles)
	}
	opts := runtime.CreateOpts{Terminal: f.tty, Stdin: f.stdin, LogMaxSize: size, LogMaxFiles: f.logMaxFiles,
		AutoRemove: f.rm}
	if dir, ok, err := f.bundleDir(command); ok || err != nil {
		return dir, opts, err
	}
	bopts, err := f.bundleOptions(command)
	if err != nil {
		return "", opts, err
	}
	if _, _, err := bundle.Check(bopts); err != nil {
		return "", opts, err
	}
	opts.WriteBundle = func(dir string) error { return bundle.Write(dir, bopts) }
	return "", opts, nil
}

// bundleDir says whether the container runs a bundle folder as it is:
// --bundle, or (today's default) the current folder when it holds a
// config.json and nothing asks tether to write one.
func (f *createFlags) bundleDir(command []string) (string, bool, error) {
	var given []string
	for _, name := range specFlags {
		if f.cmd.Flags().Changed(name) {
			given = append(given, "--"+name)
		}
	}
	if f.bundle != "" {
		switch {
		case f.rootfs != "":
			return "", false, usagef("--bundle and --rootfs both given: a bundle has its own rootfs, give one of them")
		case len(command) > 0:
			return "", false, usagef("--bundle runs the bundle's own command: leave out %q, or use --rootfs", command)
		case len(given) > 0:
			return "", false, usagef("%s shape(s) a config.json tether writes: with --bundle edit %s instead, or use --rootfs",
				strings.Join(given, ", "), filepath.Join(f.bundle, "config.json"))
		}
		return f.bundle, true, nil
	}
	if f.rootfs != "" || len(command) > 0 || len(given) > 0 {
		return "", false, nil
	}
	if _, err := os.Stat("config.json"); err == nil {
		return ".", true, nil
	}
	return "", false, nil
}

// bundleOptions turns the flags into what bundle.Write writes.
func (f *createFlags) bundleOptions(command []string) (bundle.Options, error) {
	opts := bundle.Options{Args: command, Terminal: f.tty, Cwd: f.workdir, Hostname: f.hostname,
		Rootfs: f.rootfs, ReadOnly: f.readOnly}
	env, err := readEnvFiles(f.envFiles)
	if err != nil {
		return opts, err
	}
	opts.Env = append(env, expandEnv(f.env)...)
	if opts.User, err = parseUser(f.user, f.rootfs); err != nil {
		return opts, usageError{error: err}
	}
	if opts.Mounts, err = parseVolumes(f.volumes); err != nil {
		return opts, usageError{error: err}
	}
	if opts.Resources, err = parseResources(f.memory, f.cpus); err != nil {
		return opts, usageError{error: err}
	}
	if opts.Rootless, err = bundle.DetectRootless(); err != nil {
		return opts, err
	}
	return opts, nil
}

// expandEnv gives a bare KEY (no =) the value it has here, as docker does;
// a KEY not set here is left out.
func expandEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		} else if v, ok := os.LookupEnv(kv); ok {
			out = append(out, kv+"="+v)
		}
	}
	return out
}

// readEnvFiles reads KEY=VALUE lines; blank lines and # comments are
// skipped, and a bare KEY takes its value from here.
func readEnvFiles(paths []string) ([]string, error) {
	var env []string
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, usagef("--env-file: %v: give a readable file of KEY=VALUE lines", err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, "=") || strings.ContainsAny(strings.SplitN(line, "=", 2)[0], " \t") {
				f.Close()
				return nil, usagef("--env-file %s line %d: %q is not KEY=VALUE", p, n, line)
			}
			env = append(env, expandEnv([]string{line})...)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", p, err)
		}
	}
	return env, nil
}

// parseUser reads UID[:GID]; names are looked up in the rootfs's
// /etc/passwd and /etc/group (the default busybox rootfs has root and
// nobody). A UID alone takes its group from /etc/passwd, else its own
// number.
func parseUser(s, rootfs string) (specs.User, error) {
	if s == "" {
		return specs.User{}, nil
	}
	u, g, hasGroup := strings.Cut(s, ":")
	uid, gid, err := lookupID(u, rootfs, "passwd")
	if err != nil {
		return specs.User{}, fmt.Errorf("--user %q: %w", s, err)
	}
	if hasGroup {
		if gid, _, err = lookupID(g, rootfs, "group"); err != nil {
			return specs.User{}, fmt.Errorf("--user %q: %w", s, err)
		}
	}
	return specs.User{UID: uid, GID: gid}, nil
}

// defaultUsers are the users and groups of the default busybox rootfs.
var defaultUsers = map[string]uint32{"root": 0, "nobody": 65534}

// lookupID returns the number of name (a number, or a name in the
// rootfs's etc/FILE, passwd or group) and the group of that entry (for
// passwd; else the number itself). rootfs "" is the default busybox
// rootfs, not written yet: its entries are defaultUsers.
func lookupID(name, rootfs, file string) (uint32, uint32, error) {
	if rootfs == "" {
		id, ok := defaultUsers[name]
		if n, err := strconv.ParseUint(name, 10, 32); err == nil {
			id, ok = uint32(n), true
		}
		if !ok {
			return 0, 0, fmt.Errorf("%q is not a number, nor in the busybox rootfs's %s (root, nobody)", name, file)
		}
		return id, id, nil
	}
	path := filepath.Join(rootfs, "etc", file)
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		if _, gid, err := scanIDFile(path, name, true); err == nil {
			return uint32(n), gid, nil
		}
		return uint32(n), uint32(n), nil
	}
	id, gid, err := scanIDFile(path, name, false)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w: give a number", name, err)
	}
	return id, gid, nil
}

// scanIDFile finds name (or, byNumber, the entry whose number is name)
// in a passwd or group file.
func scanIDFile(file, name string, byNumber bool) (uint32, uint32, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) < 3 || (byNumber && fields[2] != name) || (!byNumber && fields[0] != name) {
			continue
		}
		id, err1 := strconv.ParseUint(fields[2], 10, 32)
		gid := id
		var err2 error
		if len(fields) > 3 && strings.HasSuffix(file, "passwd") {
			gid, err2 = strconv.ParseUint(fields[3], 10, 32)
		}
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("bad entry in %s", file)
		}
		return uint32(id), uint32(gid), nil
	}
	return 0, 0, fmt.Errorf("not in %s", file)
}

// parseVolumes reads HOST:CTR[:ro|:rw] bind mounts; HOST must exist.
func parseVolumes(vols []string) ([]specs.Mount, error) {
	var mounts []specs.Mount
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("--volume %q: use HOST:CTR or HOST:CTR:ro", v)
		}
		opts := []string{"rbind", "rprivate"}
		if len(parts) == 3 {
			switch parts[2] {
			case "ro":
				opts = append(opts, "ro")
			case "rw":
			default:
				return nil, fmt.Errorf("--volume %q: the mode is ro or rw, not %q", v, parts[2])
			}
		}
		host, err := filepath.Abs(parts[0])
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(host); err != nil {
			return nil, fmt.Errorf("--volume %q: %s: %w: create it first", v, host, errors.Unwrap(err))
		}
		if !filepath.IsAbs(parts[1]) {
			return nil, fmt.Errorf("--volume %q: the container path %q must start with /", v, parts[1])
		}
		mounts = append(mounts, specs.Mount{Destination: filepath.Clean(parts[1]), Type: "bind", Source: host, Options: opts})
	}
	return mounts, nil
}

// cpuPeriod is the CFS period --cpus is expressed in, as docker's.
const cpuPeriod = 100000

// parseResources reads --memory and --cpus; nil when neither is given.
func parseResources(memory string, cpus float64) (*specs.LinuxResources, error) {
	if memory == "" && cpus == 0 {
		return nil, nil
	}
	res := &specs.LinuxResources{}
	if memory != "" {
		n, err := parseSize(memory)
		if err != nil || n < 4<<20 {
			return nil, fmt.Errorf("--memory %q: give a size of at least 4m, such as 64m or 1g", memory)
		}
		res.Memory = &specs.LinuxMemory{Limit: &n}
	}
	if cpus != 0 {
		if cpus < 0.01 || cpus > 1024 {
			return nil, fmt.Errorf("--cpus %v: give a number of CPUs between 0.01 and 1024, such as 0.5", cpus)
		}
		quota, period := int64(cpus*cpuPeriod), uint64(cpuPeriod)
		res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	return res, nil
}
