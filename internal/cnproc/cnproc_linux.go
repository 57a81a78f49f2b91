// Package cnproc listens to the kernel's process events connector for the
// exit status of processes the caller is not the parent of: what an
// adopting shim (or podman's watcher) uses in place of wait4.
package cnproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tether-run/tether/reaper"
	"golang.org/x/sys/unix"
)

// An adopting shim is not the parent of the process it adopts, so wait4
// cannot give it the exit status. The kernel's process events connector
// (NETLINK_CONNECTOR, group CN_IDX_PROC, root only) can: it multicasts one
// PROC_EVENT_EXIT message per exiting thread, with the thread's exit code
// in wait-status form, to every listener. Listener keeps the last such
// event of each thread group it watches. The event of a thread is sent
// right after the thread is notified dead, so it may trail the pidfd
// wake-up by a moment: StatusOf waits for it, boundedly. Netlink drops
// messages when a listener's buffer is full (ENOBUFS); a listener that saw
// a drop reports any exit it did not see as unknown rather than guess.

// Constants of <linux/connector.h> and <linux/cn_proc.h>.
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExit     = 0x80000000
	cnMsgLen          = 20 // struct cn_msg without data
	procEventHdrLen   = 16 // what, cpu, timestamp_ns
)

// exitEventWait bounds how long StatusOf waits for a trailing event.
const exitEventWait = 2 * time.Second

// Listener collects exit events of watched thread groups.
type Listener struct {
	f  *os.File
	fd int

	mu     sync.Mutex
	watch  map[int]bool
	exits  map[int]exitEvent // last event per watched tgid
	lost   bool              // the kernel dropped events
	buf    []byte            // receive buffer, used under mu
	wakeup chan struct{}     // closed and replaced when a watched event arrives
}

type exitEvent struct {
	tid  int
	code uint32 // wait status
}

// Listen subscribes to the process events connector. It fails
// without CAP_NET_ADMIN or on a kernel built without CONFIG_PROC_EVENTS.
func Listen() (*Listener, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) // best effort
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink connector: %w", err)
	}
	if err := unix.Sendto(fd, listenMessage(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribe to process events: %w", err)
	}
	l := &Listener{f: os.NewFile(uintptr(fd), "cn_proc"), fd: fd,
		watch: map[int]bool{}, exits: map[int]exitEvent{}, wakeup: make(chan struct{})}
	go l.run()
	return l, nil
}

// listenMessage is PROC_CN_MCAST_LISTEN; kernels from 6.6 take a filter
// after it, and this one asks for exit events only. Older kernels ignore a
// message of that size, so they get the plain one.
func listenMessage() []byte {
	payload := 4
	if kernelAtLeast(6, 6) {
		payload = 8
	}
	msg := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+payload)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(os.Getpid()))
	cn := msg[unix.NLMSG_HDRLEN:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], uint16(payload))
	ne.PutUint32(cn[cnMsgLen:], procCnMcastListen)
	if payload == 8 {
		ne.PutUint32(cn[cnMsgLen+4:], procEventExit)
	}
	return msg
}

// kernelAtLeast compares the running kernel's release with major.minor.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	f := strings.FieldsFunc(unix.ByteSliceToString(u.Release[:]), func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(f[0])
	mi, _ := strconv.Atoi(f[1])
	return ma > major || (ma == major && mi >= minor)
}

// Watch starts keeping the exit events of thread group pid. Call it
// before checking that the process is alive, so its exit cannot be missed.
func (l *Listener) Watch(pid int) {
	l.mu.Lock()
	l.watch[pid] = true
	l.mu.Unlock()
}

// Forget stops keeping the exit events of thread group pid (a watcher
// done with it), so a long-lived listener does not grow.
func (l *Listener) Forget(pid int) {
	l.mu.Lock()
	delete(l.watch, pid)
	delete(l.exits, pid)
	l.mu.Unlock()
}

// run drains the socket whenever it is readable, until it is closed.
func (l *Listener) run() {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(uintptr) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.drainLocked() != nil
	})
}

// drainLocked reads every queued message; it returns an error only when
// the socket is unusable. l.mu is held, so a message is never read without
// being recorded under the same lock (StatusOf relies on that).
func (l *Listener) drainLocked() error {
	if l.buf == nil {
		// One buffer for the listener's life: every exit on the host
		// arrives here, and a buffer per wake-up was most of a watcher's
		// heap.
		l.buf = make([]byte, 16<<10)
	}
	buf := l.buf
	for {
		n, _, err := unix.Recvfrom(l.fd, buf, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return nil
		case err == unix.ENOBUFS:
			l.lost = true
			continue
		case err != nil:
			return err
		}
		forEachMessage(buf[:n], l.record)
	}
}

// forEachMessage calls fn with the payload of each netlink message in b,
// in place (syscall.ParseNetlinkMessage allocates for every datagram, and
// a listener gets one per exit on the host). A truncated message ends it.
func forEachMessage(b []byte, fn func([]byte)) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return
		}
		fn(b[unix.NLMSG_HDRLEN:l])
		next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next > len(b) {
			return
		}
		b = b[next:]
	}
}

// record keeps a PROC_EVENT_EXIT of a watched thread group; l.mu is held.
func (l *Listener) record(d []byte) {
	ne := binary.NativeEndian
	if len(d) < cnMsgLen+procEventHdrLen+16 || ne.Uint32(d[0:]) != cnIdxProc || ne.Uint32(d[4:]) != cnValProc {
		return
	}
	ev := d[cnMsgLen:]
	if ne.Uint32(ev[0:]) != procEventExit {
		return
	}
	data := ev[procEventHdrLen:]
	tid, tgid := int(ne.Uint32(data[0:])), int(ne.Uint32(data[4:]))
	if !l.watch[tgid] {
		return
	}
	l.exits[tgid] = exitEvent{tid: tid, code: ne.Uint32(data[8:])}
	close(l.wakeup)
	l.wakeup = make(chan struct{})
}

// errExitNotSeen: the listener has no event for a process that is gone.
var errExitNotSeen = errors.New("no exit event was received")

// StatusOf returns the exit status (code, or 128+signal) of thread group
// pid, which the caller knows has ended (its pidfd said so). It waits at
// most exitEventWait for the event of the group's leader, then takes the
// last event of the group: with exit_group every thread carries the
// group's status.
func (l *Listener) StatusOf(pid int) (int, error) {
	deadline := time.After(exitEventWait)
	for {
		l.mu.Lock()
		err := l.drainLocked()
		ev, ok := l.exits[pid]
		lost, wake := l.lost, l.wakeup
		l.mu.Unlock()
		if ok && ev.tid == pid {
			return reaper.ExitStatus(unix.WaitStatus(ev.code)), nil
		}
		if err != nil {
			return 0, err
		}
		select {
		case <-wake:
		case <-deadline:
			if ok {
				return reaper.ExitStatus(unix.WaitStatus(ev.code)), nil
			}
			if lost {
				return 0, fmt.Errorf("%w: the kernel dropped process events", errExitNotSeen)
			}
			return 0, errExitNotSeen
		}
	}
}

// Close stops listening.
func (l *Listener) Close() { l.f.Close() }
