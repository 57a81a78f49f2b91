package containerd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"
)

// mountFlags are the mount options that are flags; any other option is
// passed to the filesystem as data.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async": {true, unix.MS_SYNCHRONOUS}, "atime": {true, unix.MS_NOATIME},
	"bind": {false, unix.MS_BIND}, "defaults": {false, 0}, "dev": {true, unix.MS_NODEV},
	"diratime": {true, unix.MS_NODIRATIME}, "dirsync": {false, unix.MS_DIRSYNC},
	"exec": {true, unix.MS_NOEXEC}, "mand": {false, unix.MS_MANDLOCK},
	"noatime": {false, unix.MS_NOATIME}, "nodev": {false, unix.MS_NODEV},
	"nodiratime": {false, unix.MS_NODIRATIME}, "noexec": {false, unix.MS_NOEXEC},
	"nomand": {true, unix.MS_MANDLOCK}, "norelatime": {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME}, "nosuid": {false, unix.MS_NOSUID},
	"rbind": {false, unix.MS_BIND | unix.MS_REC}, "relatime": {false, unix.MS_RELATIME},
	"remount": {false, unix.MS_REMOUNT}, "ro": {false, unix.MS_RDONLY},
	"rw": {true, unix.MS_RDONLY}, "strictatime": {false, unix.MS_STRICTATIME},
	"suid": {true, unix.MS_NOSUID}, "sync": {false, unix.MS_SYNCHRONOUS},
}

// parseMountOptions splits options into mount flags and filesystem data.
func parseMountOptions(options []string) (flags uintptr, data string) {
	var rest []string
	for _, o := range options {
		f, ok := mountFlags[o]
		switch {
		case !ok:
			rest = append(rest, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
		}
	}
	return flags, strings.Join(rest, ",")
}

// mountRootfs mounts containerd's rootfs mounts, in order, on
// bundle/rootfs (under each mount's Target when it has one). On error
// what was mounted is undone.
func mountRootfs(bundle string, mounts []*types.Mount) error {
	rootfs := filepath.Join(bundle, "rootfs")
	for i, m := range mounts {
		target := filepath.Join(rootfs, m.Target)
		if err := os.MkdirAll(target, 0o711); err != nil {
			unmountRootfs(bundle)
			return fmt.Errorf("rootfs mount %d: %w", i, err)
		}
		if err := mountOne(m, target); err != nil {
			unmountRootfs(bundle)
			return fmt.Errorf("rootfs mount %d (%s %s): %w", i, m.Type, m.Source, err)
		}
	}
	return nil
}

func mountOne(m *types.Mount, target string) error {
	flags, data := parseMountOptions(m.Options)
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("mount options are %d bytes, more than a page: too many layers", len(data))
	}
	first := flags
	if flags&unix.MS_BIND != 0 {
		first &^= unix.MS_RDONLY // see below
	}
	if err := unix.Mount(m.Source, target, m.Type, first, data); err != nil {
		return err
	}
	// A bind mount ignores MS_RDONLY until it is remounted.
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		return unix.Mount("", target, "", flags|unix.MS_REMOUNT, "")
	}
	return nil
}

// unmountRootfs undoes every mount on bundle/rootfs (stacked ones too).
// A rootfs that is not a mount point is left alone.
func unmountRootfs(bundle string) error {
	rootfs := filepath.Join(bundle, "rootfs")
	for range 32 {
		if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
			if err == unix.EINVAL || err == unix.ENOENT {
				return nil
			}
			return fmt.Errorf("unmount %s: %w", rootfs, err)
		}
	}
	return nil
}
