package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// exitRow: SIGKILL of a container's init, sent by the bench to the pid in
// init.pid, until exit.json is renamed into place (seen through inotify,
// not by polling); and, as a note, until a client blocked in wait is told.
func (b *bench) exitRow(ctx context.Context) Row {
	const name, label, target = "exit_record", "exit record", "< 3 ms median"
	var onDisk, told samples
	for i := 0; i < b.n; i++ {
		if ctx.Err() != nil {
			return failed(name, label, "ms", target, errStopped)
		}
		d, t, err := b.exitOnce(b.id("exit", i))
		if err != nil {
			return failed(name, label, "ms", target, err)
		}
		onDisk, told = append(onDisk, ms(d)), append(told, ms(t))
	}
	r := Row{Name: name, Label: label, figure: figureOf(onDisk), Unit: "ms", Target: target}
	r.Note = fmt.Sprintf("SIGKILL to exit.json renamed into place (the shim fsyncs the file before and the folder after); a client already waiting was told after %s",
		fmtFigure(figureOf(told), "ms"))
	r.met(r.Value < 3)
	return r
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
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
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
