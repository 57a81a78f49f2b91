package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// exitRows: SIGKILL of a container's init, sent by the bench, until a
// waiter is told the status. For Tether, a wait request already sent on
// the control socket is answered (the shim has made exit.json durable
// first; the note gives the time until it was renamed into place, seen
// through inotify). For conmon, the exit file appears in its exit folder
// (what podman's wait reads), seen through inotify. The floor: a pidfd of
// the init, opened before the kill, becomes readable (the kernel's own
// notice of the exit, before anyone reaps it), on a container made by the
// runtime alone. Each round runs the three in turn, rotating the order.
func (b *bench) exitRows(ctx context.Context) []Row {
	const name, label, target = "exit", "SIGKILL → status seen", "≤ conmon (1.00x)"
	var onDisk samples
	viaTether := func(i int) (time.Duration, error) {
		d, t, err := b.exitOnce(b.id("exit", i))
		if err == nil && i > 0 {
			onDisk = append(onDisk, ms(d))
		}
		return t, err
	}
	bare := func(i int) (time.Duration, error) { return b.exitBare(b.id("rexit", i)) }
	fs := []func(int) (time.Duration, error){viaTether, bare}
	cm, cerr := b.newConmonSet()
	if cerr == nil {
		defer cm.stop()
		fs = append(fs, func(i int) (time.Duration, error) { return cm.exitOnce(b.id("cexit", i)) })
	}
	s, err := interleave(ctx, b.n, fs...)
	if err != nil {
		return []Row{failed(name, label, "ms", target, err)}
	}
	r := Row{Name: name, Label: label, figure: figureOf(s[0]), Unit: "ms", Target: target}
	r.Note = fmt.Sprintf("%d samples each, interleaved: SIGKILL of init until a wait already sent to the shim is answered; exit.json (fsync'd file, then folder) renamed into place after %s",
		len(s[0]), fmtFigure(figureOf(onDisk), "ms"))
	floor := Row{Name: "exit_floor", Label: "SIGKILL → exit: floor (pidfd)", figure: figureOf(s[1]), Unit: "ms",
		Note: "a pidfd of init (" + b.rt + " create+start alone) opened before the kill becomes readable: the kernel's notice, no monitor"}
	if cerr != nil {
		r.withBaseline("conmon", figure{})
		r.Note += "; no conmon baseline: " + cerr.Error()
		return []Row{r, floor}
	}
	r.withBaseline("conmon exit file", figureOf(s[2]))
	r.met(r.Ratio != nil && *r.Ratio <= 1.0)
	r.Note += "; conmon: until its exit file is written in --exit-dir (seen through inotify; conmon does not fsync it)"
	return []Row{r, floor}
}

// exitBare makes a container with the runtime alone, opens a pidfd of its
// init and returns the time from SIGKILL to the pidfd being readable.
func (b *bench) exitBare(id string) (time.Duration, error) {
	pidFile := filepath.Join(b.dir, id+".pid")
	if _, err := b.runtimeCmd(b.rawRoot, "create", "--bundle", b.sleepBundle, "--pid-file", pidFile, id); err != nil {
		return 0, err
	}
	defer b.runtimeCmd(b.rawRoot, "delete", "--force", id)
	defer os.Remove(pidFile)
	if _, err := b.runtimeCmd(b.rawRoot, "start", id); err != nil {
		return 0, err
	}
	init, err := readPidIdentity(pidFile)
	if err != nil {
		return 0, err
	}
	fd, err := unix.PidfdOpen(init.Pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(fd)
	if err := init.Check(); err != nil { // still ours: the pidfd names it
		return 0, err
	}
	t0 := time.Now()
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return 0, err
	}
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(cmdTimeout.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("init did not exit")
		}
		return time.Since(t0), nil
	}
}

// exitOnce runs container id under conmon, kills its init and returns the
// time until conmon's exit file was written (closed after writing or
// renamed into place).
func (c *conmonSet) exitOnce(id string) (time.Duration, error) {
	if _, err := c.launch(id, c.b.sleepBundle); err != nil {
		return 0, err
	}
	defer c.remove(id)
	init, err := readPidIdentity(c.file(id, ".pid"))
	if err != nil {
		return 0, err
	}
	w, err := watchDirMask(filepath.Dir(c.exitPath(id)), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
	if err != nil {
		return 0, err
	}
	defer unix.Close(w)
	t0 := time.Now()
	if err := init.Signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	if err := awaitFile(w, id, 10*time.Second); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if b, err := os.ReadFile(c.exitPath(id)); err != nil || len(b) == 0 {
		return 0, fmt.Errorf("conmon %s: exit file empty or unreadable (%v)", id, err)
	}
	return d, nil
}

// exitOnce starts a container, kills its init and returns the time until
// the exit record appeared and until a waiting client got the answer.
func (b *bench) exitOnce(id string) (onDisk, told time.Duration, err error) {
	if _, err := b.tether("run", "-d", "--bundle", b.sleepBundle, id); err != nil {
		return 0, 0, err
	}
	defer b.tether("delete", "--force", id)
	dir := b.cdir(id)
	st := store.At(filepath.Dir(dir), id)
	init, err := st.Init().ReadPid()
	if err != nil {
		return 0, 0, err
	}
	w, err := watchDir(dir)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(w)
	answer, err := waitRequest(st)
	if err != nil {
		return 0, 0, err
	}
	defer answer.Close()
	t0 := time.Now()
	if err := init.Signal(syscall.SIGKILL); err != nil {
		return 0, 0, err
	}
	if err := awaitFile(w, filepath.Base(st.Init().ExitPath()), 10*time.Second); err != nil {
		return 0, 0, err
	}
	onDisk = time.Since(t0)
	if _, err := answer.wait(); err != nil {
		return 0, 0, err
	}
	return onDisk, time.Since(t0), nil
}

// watchDir returns an inotify fd watching dir for files moved or created
// in it.
func watchDir(dir string) (int, error) {
	return watchDirMask(dir, unix.IN_MOVED_TO|unix.IN_CREATE)
}

// watchDirMask returns an inotify fd watching dir for the events of mask.
func watchDirMask(dir string, mask uint32) (int, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	return fd, nil
}

// awaitFile reads inotify events from fd until one names name.
func awaitFile(fd int, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64*1024)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s did not appear within %v", name, timeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return err
		}
		n, err = unix.Read(fd, buf)
		if err != nil {
			return err
		}
		if hasName(buf[:n], name) {
			return nil
		}
	}
}

// hasName reports whether a buffer of inotify events names name.
func hasName(buf []byte, name string) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		start := off + unix.SizeofInotifyEvent
		end := start + int(ev.Len)
		if end > len(buf) {
			return false
		}
		if strings.TrimRight(string(buf[start:end]), "\x00") == name {
			return true
		}
		off = end
	}
	return false
}

// pendingWait is a wait request already sent to a shim.
type pendingWait struct {
	conn *net.UnixConn
}

// waitRequest sends a wait request on the container's control socket now;
// pendingWait.wait then reads the answer. The request is in the shim's
// socket before whatever is measured next, so the measure includes no
// connection set-up.
func waitRequest(st *store.Folder) (*pendingWait, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: st.SocketPath(), Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := shimapi.WriteMessage(conn, shimapi.NewRequest(shimapi.Version, shimapi.WaitReq{})); err != nil {
		conn.Close()
		return nil, err
	}
	return &pendingWait{conn: conn}, nil
}

// wait returns the exit the shim answered with, at most cmdTimeout.
func (p *pendingWait) wait() (*shimapi.Exit, error) {
	p.conn.SetReadDeadline(time.Now().Add(cmdTimeout))
	var resp shimapi.Response
	if err := shimapi.ReadMessage(bufio.NewReader(p.conn), &resp); err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	if resp.Exit == nil {
		return nil, errors.New("wait answered without an exit: " + resp.Error)
	}
	return resp.Exit, nil
}

// Close hangs up.
func (p *pendingWait) Close() error { return p.conn.Close() }
