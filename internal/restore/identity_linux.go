package restore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// ErrForeign is returned (wrapped, next to proc.ErrGone) when a pid record
// names a live process whose identity fields match but which is not what
// the record is about: not a tether-shim serving this container, or not a
// process inside this container. Such a process is never signalled.
var ErrForeign = errors.New("pid belongs to an unrelated process")

// VerifyShim reports nil when id names a live tether-shim process serving
// container cid in root: its identity (pid, start time, boot id) matches
// and its command line is "tether-shim serve|serve-adopt --root ROOT --id
// CID". A pid record pointing at anything else gives an error satisfying
// errors.Is(err, proc.ErrGone), and ErrForeign when the identity matched
// but the command line did not.
func VerifyShim(id proc.Identity, root, cid string) error {
	if err := id.Check(); err != nil {
		return err
	}
	b, err := proc.Cmdline(id.Pid) // read through a live thread while an upgrade's exec is under way
	if err != nil {
		return err
	}
	if !isShimCmdline(b, root, cid) {
		return fmt.Errorf("pid %d is not the shim of %s: %w: %w", id.Pid, cid, ErrForeign, proc.ErrGone)
	}
	return nil
}

// isShimCmdline checks a NUL-separated command line for the shim's
// action, --root and --id.
func isShimCmdline(b []byte, root, cid string) bool {
	args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	if len(args) < 2 || (string(args[1]) != shimapi.ServeCreate && string(args[1]) != shimapi.ServeAdopt) {
		return false
	}
	var gotRoot, gotID bool
	for i := 2; i+1 < len(args); i++ {
		switch string(args[i]) {
		case "--root":
			gotRoot = filepath.Clean(string(args[i+1])) == filepath.Clean(root)
		case "--id":
			gotID = string(args[i+1]) == cid
		}
	}
	return gotRoot && gotID
}

// VerifyMember reports nil when id names a live process inside the
// container rec describes: its identity matches and its root folder
// (/proc/PID/root) is the bundle's root filesystem, the same inode on the
// same device. The runtime pivots into that folder before the container is
// even created, so init, whether created or running, and every exec'd
// process pass; a process of the host whose pid and start time were copied
// into a record does not. Errors satisfy errors.Is(err, proc.ErrGone), with
// ErrForeign when only the root differed.
func VerifyMember(rec *store.Record, id proc.Identity) error {
	if err := id.Check(); err != nil {
		return err
	}
	rootfs, err := bundleRootfs(rec.Bundle)
	if err != nil {
		return err
	}
	var want, got unix.Stat_t
	if err := unix.Stat(rootfs, &want); err != nil {
		return fmt.Errorf("stat rootfs %s: %w", rootfs, err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(id.Pid)+"/root", &got); err != nil {
		return fmt.Errorf("pid %d: %w", id.Pid, proc.ErrGone)
	}
	if want.Dev != got.Dev || want.Ino != got.Ino {
		return fmt.Errorf("pid %d is not in container %s: %w: %w", id.Pid, rec.ID, ErrForeign, proc.ErrGone)
	}
	return nil
}

// bundleRootfs returns the absolute root filesystem of a bundle.
func bundleRootfs(bundle string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", fmt.Errorf("read bundle config: %w", err)
	}
	var cfg struct {
		Root *struct {
			Path string `json:"path"`
		} `json:"root"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Root == nil || cfg.Root.Path == "" {
		return "", fmt.Errorf("bundle %s: config.json names no root path", bundle)
	}
	if filepath.IsAbs(cfg.Root.Path) {
		return cfg.Root.Path, nil
	}
	return filepath.Join(bundle, cfg.Root.Path), nil
}

// OpenMember opens a pidfd for the process id names after checking, with
// the pidfd held, that it is a live member of the container. Signals sent
// through the pidfd reach that process or nobody. The caller closes it.
func OpenMember(rec *store.Record, id proc.Identity) (int, error) {
	fd, err := id.Open()
	if err != nil {
		return -1, err
	}
	if err := VerifyMember(rec, id); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
