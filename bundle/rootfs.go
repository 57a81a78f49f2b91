package bundle

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// rootfsDirs are the folders of the root filesystem and their modes.
var rootfsDirs = []struct {
	name string
	mode fs.FileMode
}{
	{"bin", 0o755},
	{"dev", 0o755},
	{"etc", 0o755},
	{"proc", 0o555},
	{"root", 0o700},
	{"sys", 0o555},
	{"tmp", 0o777 | fs.ModeSticky},
}

// buildRootfs makes the root filesystem at rootfs, which must not exist:
// its folders, busybox and its applet links in bin, and the files in etc.
func buildRootfs(rootfs, busybox, hostname string) error {
	if err := mkdirMode(rootfs, 0o755); err != nil {
		return err
	}
	for _, d := range rootfsDirs {
		if err := mkdirMode(filepath.Join(rootfs, d.name), d.mode); err != nil {
			return err
		}
	}
	bin := filepath.Join(rootfs, "bin")
	if err := copyFile(busybox, filepath.Join(bin, "busybox"), 0o755); err != nil {
		return err
	}
	applets, err := listApplets(filepath.Join(bin, "busybox"))
	if err != nil {
		return err
	}
	if err := linkApplets(bin, applets); err != nil {
		return err
	}
	return writeEtc(filepath.Join(rootfs, "etc"), hostname)
}

// mkdirMode creates a folder and sets its mode exactly, whatever the umask.
func mkdirMode(path string, mode fs.FileMode) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// linkApplets makes bin/NAME a symlink to "busybox" for every applet.
func linkApplets(bin string, applets []string) error {
	for _, name := range applets {
		if err := os.Symlink("busybox", filepath.Join(bin, name)); err != nil {
			return err
		}
	}
	return nil
}

// writeEtc writes the minimal passwd, group and hostname files.
func writeEtc(etc, hostname string) error {
	files := []struct{ name, content string }{
		{"passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"group", "root:x:0:\nnobody:x:65534:\n"},
		{"hostname", hostname + "\n"},
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(etc, f.name), []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeNew writes data to a file that must not exist yet.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyFile copies src to the new file dst and sets dst's mode exactly.
func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
