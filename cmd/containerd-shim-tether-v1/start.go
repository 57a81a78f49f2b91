package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/tether-run/tether/internal/gotune"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// defaultSocketDir is containerd's folder of shim sockets (fixed in 1.6).
const defaultSocketDir = "/run/containerd/s"

// maxStdin bounds what start reads of its standard input.
const maxStdin = 1 << 20

// start makes the socket, spawns the serving shim and prints the address.
// It prints nothing else on stdout or stderr when it succeeds: containerd
// 1.6 reads its combined output as the address.
func start(f *flags) error {
	readBootstrap(f)
	dir := f.socketDir
	if dir == "" {
		dir = defaultSocketDir
	}
	path := socketPath(dir, f.address, f.namespace, f.id)
	addr := "unix://" + path
	if alive(path) {
		// Already serving this task (start run twice): the same shim.
		fmt.Print(addr)
		return nil
	}
	ln, err := listen(path)
	if err != nil {
		return err
	}
	if err := spawn(f, ln); err != nil {
		ln.Close()
		os.Remove(path)
		return err
	}
	ln.Close() // the shim has its own copy
	if err := writeAddress(f.bundle, addr); err != nil {
		return err
	}
	fmt.Print(addr)
	return nil
}

// readBootstrap honours containerd 2.3+'s BootstrapParams (protobuf on
// stdin) when they are there: namespace, ttrpc address and socket folder.
// containerd 1.6 writes the runtime options there instead, and a person
// running start by hand nothing: both are fine, the flags then rule.
func readBootstrap(f *flags) {
	var st unix.Stat_t
	if unix.Fstat(0, &st) != nil || (st.Mode&unix.S_IFMT != unix.S_IFIFO && st.Mode&unix.S_IFMT != unix.S_IFREG) {
		return // a terminal or nothing: never block on it
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, maxStdin))
	if err != nil || len(b) == 0 {
		return
	}
	var p bootstrap.BootstrapParams
	if proto.Unmarshal(b, &p) != nil || p.InstanceID == "" {
		return
	}
	if p.Namespace != "" {
		f.namespace = p.Namespace
	}
	if p.ContainerdTtrpcAddress != "" {
		os.Setenv("TTRPC_ADDRESS", strings.TrimPrefix(p.ContainerdTtrpcAddress, "unix://"))
	}
	if p.ContainerdGrpcAddress != "" {
		f.address = strings.TrimPrefix(p.ContainerdGrpcAddress, "unix://")
	}
	if p.SocketDir != nil && *p.SocketDir != "" && f.socketDir == "" {
		f.socketDir = *p.SocketDir
	}
}

// socketPath names the task's socket as containerd's own shims do: the
// SHA-256 of containerd's address, the namespace and the ID, so it is
// short and unique per containerd instance.
func socketPath(dir, address, ns, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return filepath.Join(dir, fmt.Sprintf("%x", sum))
}

// alive reports whether a shim answers on path.
func alive(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// listen binds the task socket with mode 0600 (never reachable by another
// user), replacing a stale file left by a dead shim.
func listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("make socket folder: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// spawn starts "serve" in its own session with the listener on fd 3 and
// its stdio on the bundle's shim log, so containerd (which waits for
// start's output to end) is never held by it.
func spawn(f *flags, ln *net.UnixListener) error {
	lf, err := ln.File()
	if err != nil {
		return err
	}
	defer lf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(f.bundle, ShimLogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open shim log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	args := []string{"-namespace", f.namespace, "-address", f.address, "-id", f.id,
		"-bundle", f.bundle, "-publish-binary", f.publishBinary}
	if f.debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, append(args, actionServe)...)
	cmd.Dir = f.bundle
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = gotune.Env(os.Environ()) // replaces containerd's GOMAXPROCS=2
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start shim: %w", err)
	}
	return cmd.Process.Release()
}

// ShimLogName is the serving shim's log (JSON lines) in the bundle.
const ShimLogName = "shim-tether.log"

// writeAddress writes the bundle's address file atomically.
func writeAddress(bundle, addr string) error {
	tmp := filepath.Join(bundle, ".address.tmp")
	if err := os.WriteFile(tmp, []byte(addr), 0o600); err != nil {
		return fmt.Errorf("write address: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(bundle, "address")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write address: %w", err)
	}
	return nil
}
