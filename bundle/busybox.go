package bundle

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// busyboxFallbacks are tried, in order, after "busybox" in PATH.
var busyboxFallbacks = []string{"/bin/busybox", "/usr/bin/busybox"}

// installHint is the fix given whenever no usable busybox is found.
const installHint = "install a static one with 'apt-get install busybox-static' or give the path of a static busybox"

// findBusybox returns the busybox to copy: explicit when it is set,
// otherwise the first static one among PATH and busyboxFallbacks. The
// error wraps ErrNoBusybox and, if a busybox was found but is unusable,
// says why.
func findBusybox(explicit string) (string, error) {
	if explicit != "" {
		return explicit, checkStatic(explicit)
	}
	var firstErr error
	for _, p := range busyboxCandidates() {
		err := checkStatic(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("%w: no busybox in PATH, /bin or /usr/bin: %s", ErrNoBusybox, installHint)
}

// busyboxCandidates lists the default places to look, without repeats.
func busyboxCandidates() []string {
	var out []string
	if p, err := exec.LookPath("busybox"); err == nil {
		out = append(out, p)
	}
	for _, p := range busyboxFallbacks {
		if len(out) == 0 || out[0] != p {
			out = append(out, p)
		}
	}
	return out
}

// checkStatic reports whether path is a statically linked ELF executable,
// that is one without a PT_INTERP program header: a dynamic one would
// need the host's loader and libraries inside the container.
func checkStatic(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: busybox %s: %w: %s", ErrNoBusybox, path, err, installHint)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: busybox %s is not an executable file: %s", ErrNoBusybox, path, installHint)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: busybox %s is not an ELF executable (%w): %s", ErrNoBusybox, path, err, installHint)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: busybox %s is dynamically linked (it needs %s), so it cannot run in the container: %s",
				ErrNoBusybox, path, interpreter(p), installHint)
		}
	}
	return nil
}

// interpreter returns the loader named by a PT_INTERP header.
func interpreter(p *elf.Prog) string {
	b := make([]byte, p.Filesz)
	if _, err := p.ReadAt(b, 0); err != nil {
		return "a dynamic loader"
	}
	return string(bytes.TrimRight(b, "\x00"))
}

// listApplets runs `busybox --list` and returns the applet names. argv[0]
// is set to "busybox" because busybox picks its applet from argv[0], and
// a copy named otherwise would refuse to list.
//
// The copy was just written: a child forked meanwhile by another goroutine
// of this process may hold its write fd for a moment (until it execs), and
// exec then fails with ETXTBSY (golang.org/issue/22315). That is retried.
func listApplets(busybox string) ([]string, error) {
	var out []byte
	var err error
	var stderr bytes.Buffer
	for try := 0; ; try++ {
		cmd := exec.Command(busybox, "--list")
		cmd.Args[0] = "busybox"
		stderr.Reset()
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s --list: %w (%s)", busybox, err, strings.TrimSpace(stderr.String()))
	}
	return parseApplets(out)
}

// parseApplets checks and deduplicates the output of `busybox --list`.
// Every name must be a plain file name; "busybox" itself is dropped; "sh"
// must be present since it is the default command.
func parseApplets(out []byte) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for _, name := range strings.Fields(string(out)) {
		if name == "." || name == ".." || strings.ContainsRune(name, '/') {
			return nil, fmt.Errorf("busybox --list gave a bad applet name %q", name)
		}
		if name == "busybox" || seen[name] {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	if !seen["sh"] {
		return nil, fmt.Errorf("%w: busybox --list has no sh applet", ErrNoBusybox)
	}
	return names, nil
}
