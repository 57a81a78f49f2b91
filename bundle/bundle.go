// Package bundle owns OCI bundles on disk: it writes a bundle with a
// busybox root filesystem and a config.json built with the runtime-spec
// types (the defaults of `runc spec`), and it validates a bundle a user
// gives before anything is asked of an OCI runtime. It does not run
// containers, talk to runc or crun, or keep any state of its own.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Options says what Write puts in a bundle. The zero value is usable: it
// runs `sh` without a terminal, in "/", with hostname "tether".
type Options struct {
	// Args is the container's command. Nil or empty means ["sh"], as
	// `runc spec` writes.
	Args []string
	// Env holds KEY=value entries added to the default environment
	// PATH=/usr/sbin:/usr/bin:/sbin:/bin and TERM=xterm; an entry whose
	// KEY is already there (PATH, TERM) replaces the default one.
	Env []string
	// Terminal sets process.terminal, so the runtime gives the process a
	// pseudo-terminal; whoever runs the bundle must then deal with the
	// console (`runc create` needs --console-socket).
	Terminal bool
	// Cwd is the working directory inside the container; it must be
	// absolute. Empty means "/".
	Cwd string
	// Hostname is the container's hostname, also written to
	// rootfs/etc/hostname. Empty means "tether".
	Hostname string
	// Busybox is the path of a static busybox to copy into the rootfs.
	// Empty means the first static one of: "busybox" looked up in PATH,
	// /bin/busybox, /usr/bin/busybox. A dynamically linked one is refused
	// in either case.
	Busybox string
	// Rootfs, when set, is an existing root filesystem folder: config.json's
	// root.path names it (made absolute) and no rootfs is built, so no
	// busybox is needed.
	Rootfs string
	// User is the process's uid, gid and additional gids; the zero value
	// is root.
	User specs.User
	// ReadOnly makes the root filesystem read-only (root.readonly).
	ReadOnly bool
	// Mounts are added after the default mounts (bind mounts of host
	// folders or files, for example).
	Mounts []specs.Mount
	// Resources, when set, replaces the default linux.resources; its
	// device rules are kept as the default's when it has none.
	Resources *specs.LinuxResources
	// Rootless, when set, makes the config one its unprivileged caller can
	// run (see DetectRootless), as `runc spec --rootless` does: a user
	// namespace, no network namespace, /sys bound read-only, no
	// linux.resources without a delegated cgroup (Resources is then
	// refused).
	Rootless *Rootless
}

// Write creates an OCI bundle in dir: config.json and rootfs/, a minimal
// root filesystem made of a copy of the static busybox at
// rootfs/bin/busybox, one symlink per applet in rootfs/bin, the folders
// dev, proc, sys, tmp (mode 1777), root and etc (with passwd, group and
// hostname).
//
// dir must not exist or must be an empty folder; missing parents are
// created. Anything else gives an error wrapping ErrExists. Without a
// usable static busybox the error wraps ErrNoBusybox. The bundle is built
// in a hidden temporary folder inside dir and moved into place, rootfs
// first and config.json last, so a bundle with a config.json is complete;
// on any failure everything Write made is removed again, including the
// parents it created.
//
// With opts.Rootfs set, only config.json is written and its root.path is
// that folder.
func Write(dir string, opts Options) error {
	if dir == "" {
		return newError(dir, nil, nil, "no folder given: name the folder to write the bundle to")
	}
	spec, busybox, err := Check(opts)
	if err != nil {
		return newError(dir, nil, err, err.Error())
	}
	if err := checkEmpty(dir); err != nil {
		return err
	}
	made, err := mkdirs(dir)
	if err != nil {
		return newError(dir, nil, err, "create folder: "+err.Error())
	}
	if err := writeIn(dir, busybox, spec); err != nil {
		removeDirs(made)
		return err
	}
	return nil
}

// Check returns the spec Write would write for opts, and the busybox it
// would copy ("" with opts.Rootfs), without writing anything: a caller can
// refuse bad options before it makes anything.
func Check(opts Options) (*specs.Spec, string, error) {
	spec, err := newSpec(opts)
	if err != nil {
		return nil, "", err
	}
	if opts.Rootfs != "" {
		abs, err := filepath.Abs(opts.Rootfs)
		if err != nil {
			return nil, "", err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, "", fmt.Errorf("%w: rootfs %s is not a folder: give the folder holding the container's files", ErrBadConfig, abs)
		}
		spec.Root.Path = abs
		return spec, "", nil
	}
	busybox, err := findBusybox(opts.Busybox)
	if err != nil {
		return nil, "", err
	}
	return spec, busybox, nil
}

// writeIn fills the existing empty folder dir through a temporary folder,
// and leaves dir as empty as it found it if that fails. Without a busybox
// (spec.Root names an existing rootfs) only config.json is written.
func writeIn(dir, busybox string, spec *specs.Spec) error {
	tmp, err := os.MkdirTemp(dir, ".tether-bundle-")
	if err != nil {
		return newError(dir, nil, err, "create temporary folder: "+err.Error())
	}
	defer os.RemoveAll(tmp)
	if busybox != "" {
		if err := buildRootfs(filepath.Join(tmp, "rootfs"), busybox, spec.Hostname); err != nil {
			return newError(dir, nil, err, "make rootfs: "+err.Error())
		}
	}
	if err := writeConfig(filepath.Join(tmp, "config.json"), spec); err != nil {
		return newError(dir, nil, err, "write config.json: "+err.Error())
	}
	if busybox != "" {
		if err := os.Rename(filepath.Join(tmp, "rootfs"), filepath.Join(dir, "rootfs")); err != nil {
			return newError(dir, nil, err, "move rootfs into place: "+err.Error())
		}
	}
	if err := os.Rename(filepath.Join(tmp, "config.json"), filepath.Join(dir, "config.json")); err != nil {
		os.RemoveAll(filepath.Join(dir, "rootfs"))
		return newError(dir, nil, err, "move config.json into place: "+err.Error())
	}
	return nil
}

// checkEmpty returns nil if dir does not exist or is an empty folder, and
// an error wrapping ErrExists otherwise.
func checkEmpty(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return newError(dir, nil, err, err.Error())
	}
	if !fi.IsDir() {
		return newError(dir, ErrExists, nil, "exists and is not a folder: pick another folder or remove it")
	}
	f, err := os.Open(dir)
	if err != nil {
		return newError(dir, nil, err, err.Error())
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return newError(dir, nil, err, "read folder: "+err.Error())
	}
	return newError(dir, ErrExists, nil,
		fmt.Sprintf("folder is not empty: pick another folder or remove it (rm -r %s)", dir))
}

// mkdirs creates dir and its missing parents, mode 0755, and returns the
// folders it created, outermost first. On failure it removes them again.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			removeDirs(made)
			return nil, err
		}
		made = append(made, missing[i])
	}
	return made, nil
}

// removeDirs removes the folders made by mkdirs, innermost first. It uses
// os.Remove, so a folder someone else has filled meanwhile is kept.
func removeDirs(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		os.Remove(made[i])
	}
}

// writeConfig writes spec as indented JSON to a new file at path.
func writeConfig(path string, spec *specs.Spec) error {
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return writeNew(path, append(data, '\n'), 0o644)
}
