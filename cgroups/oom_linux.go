package cgroups

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inotifySource watches a v2 group's memory.events for IN_MODIFY (the
// kernel notifies it whenever a counter in it changes) and the group's
// folder for its removal.
type inotifySource struct {
	dir string
	f   *os.File // the inotify fd, non-blocking, in Go's poller
}

func newInotifySource(dir string) (*inotifySource, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("oom watch: inotify_init1: %w", err)
	}
	path := filepath.Join(dir, "memory.events")
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("oom watch: inotify on %s: %w", path, gone(dir, err))
	}
	// kernfs sends nothing on memory.events when the group goes, and no
	// IN_DELETE_SELF on its folder (a kernfs folder keeps a link count);
	// the rmdir does give IN_DELETE with the group's name on the parent.
	parent := filepath.Dir(dir)
	if _, err := unix.InotifyAddWatch(fd, parent, unix.IN_DELETE|unix.IN_DELETE_SELF|unix.IN_ONLYDIR); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("oom watch: inotify on %s: %w", parent, gone(dir, err))
	}
	return &inotifySource{dir: dir, f: os.NewFile(uintptr(fd), "inotify:"+path)}, nil
}

func (s *inotifySource) wait(<-chan struct{}) (bool, error) {
	var buf [4096]byte
	n, err := s.f.Read(buf[:])
	if err != nil {
		return false, fmt.Errorf("oom watch: read inotify: %w", err)
	}
	removed := false
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := buf[off+unix.SizeofInotifyEvent : min(n, off+unix.SizeofInotifyEvent+int(ev.Len))]
		switch {
		case ev.Mask&unix.IN_DELETE != 0:
			removed = removed || string(bytes.TrimRight(name, "\x00")) == filepath.Base(s.dir)
		case ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF) != 0:
			removed = true // the parent itself went
		}
		off += unix.SizeofInotifyEvent + int(ev.Len)
	}
	return removed || groupGone(s.dir), nil
}

func (s *inotifySource) kills() (uint64, error) {
	kv, err := readKV(s.dir, "memory.events")
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}

func (s *inotifySource) close() { s.f.Close() }

// eventfdSource gets v1 OOM notifications: an eventfd registered with
// "<eventfd> <fd of memory.oom_control>" in cgroup.event_control. The
// kernel signals it on every OOM in the group and once more when the
// group is removed; closing the eventfd unregisters it.
type eventfdSource struct {
	dir      string
	f        *os.File // the eventfd, non-blocking, in Go's poller
	notified uint64   // notifications seen, for kernels without oom_kill
	counter  bool     // memory.oom_control has oom_kill
	last     uint64   // the counter as kills last read it
}

func newEventfdSource(dir string) (*eventfdSource, error) {
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, fmt.Errorf("oom watch: %w", gone(dir, err))
	}
	defer ctl.Close() // the registration holds its own reference
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("oom watch: eventfd: %w", err)
	}
	f := os.NewFile(uintptr(efd), "eventfd:"+dir)
	line := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(line), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("oom watch: register with cgroup.event_control: %w", gone(dir, err))
	}
	s := &eventfdSource{dir: dir, f: f}
	kv, err := readKV(dir, "memory.oom_control")
	if err != nil {
		f.Close()
		return nil, err
	}
	_, s.counter = kv["oom_kill"]
	return s, nil
}

// settleTime bounds how long a v1 watcher waits, after an OOM
// notification, for the kill that follows it to be counted.
const settleTime = 2 * time.Second

// wait blocks until the kernel signals the eventfd. v1 notifies when the
// group enters OOM, before the OOM killer has picked and counted its
// victim, so wait then polls memory.oom_control briefly (every 5 ms, at
// most settleTime) until oom_kill rises; it may not rise at all (memory
// freed meanwhile, oom_kill_disable set).
func (s *eventfdSource) wait(stop <-chan struct{}) (bool, error) {
	var buf [8]byte
	if _, err := s.f.Read(buf[:]); err != nil {
		return false, fmt.Errorf("oom watch: read eventfd: %w", err)
	}
	if groupGone(s.dir) {
		return true, nil
	}
	s.notified++
	if !s.counter {
		return false, nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(settleTime)
	for {
		n, err := s.read()
		if err != nil || n > s.last {
			return false, nil // kills reads it again
		}
		select {
		case <-stop:
			return false, nil
		case <-deadline:
			return false, nil
		case <-tick.C:
		}
	}
}

func (s *eventfdSource) kills() (uint64, error) {
	if !s.counter {
		return s.notified, nil
	}
	n, err := s.read()
	if err == nil {
		s.last = n
	}
	return n, err
}

func (s *eventfdSource) read() (uint64, error) {
	kv, err := readKV(s.dir, "memory.oom_control")
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}

func (s *eventfdSource) close() { s.f.Close() }
