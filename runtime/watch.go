package runtime

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// Event is the end of one container, as Watch delivers it.
type Event struct {
	// ID is the container.
	ID string
	// Exit is its exit record: the true status (code, or 128+signal) and
	// time, or UnknownExitStatus with a Reason when nobody could see it.
	// Nil when Err is set.
	Exit *ExitRecord
	// Err is set instead of Exit when the container's end cannot be known:
	// its records are unreadable, or its create never completed. Such a
	// container needs a forced delete.
	Err error
}

// Watch subscribes to the exits of every container in the root, present
// and future, and returns a channel of Events that is closed once ctx is
// done. No polling is needed by the caller.
//
// Every container's exit is delivered at least once per subscription,
// including exits that happened while no manager ran: the exit record
// stays in the container's folder until the container is deleted, and
// deleting it is the acknowledgement. A supervisor that crashed before it
// deleted a container gets its exit again when it subscribes again, with
// the same status: an exit is read from the record its shim wrote (or, if
// the shim died without writing one, reported as UnknownExitStatus, which
// no later reader can contradict since nobody is left to write another).
// Within one subscription each container's exit is delivered once. Exits
// of exec'd processes are not delivered.
//
// How: an inotify watch on the root reports new container folders; the
// folders present are scanned once after the watch is set, so none is
// missed. Each container then gets one goroutine that runs Container.Wait:
// one connection to a live shim, answered when the exit record is
// durable; the records alone when the shim is gone; adoption when the
// shim died and the init still runs. A folder without a record yet (a
// create in progress) is watched with inotify until its record appears.
// The cost is one goroutine and one idle connection per running
// container, and nothing per container once its exit has been delivered.
// With Opts.NoAdopt an orphan (a shim that died while its init runs)
// cannot be watched: it comes as an Event with Err.
func (m *Manager) Watch(ctx context.Context) (<-chan Event, error) {
	if err := os.MkdirAll(m.root, 0o711); err != nil {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	rootWd, err := unix.InotifyAddWatch(fd, m.root, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch "+m.root, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: read through the poller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &watcher{m: m, ctx: ctx, out: make(chan Event), rc: rc, rootWd: rootWd,
		tracked: map[string]bool{}, wake: map[int]chan struct{}{}}
	ents, err := os.ReadDir(m.root)
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() {
			w.track(e.Name())
		}
	}
	read := make(chan struct{})
	go func() { defer close(read); w.readEvents(f) }()
	context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		<-read
		w.wg.Wait()
		close(w.out)
	}()
	return w.out, nil
}

// watcher is one subscription.
type watcher struct {
	m      *Manager
	ctx    context.Context
	out    chan Event
	rc     syscall.RawConn // the inotify fd, safe to use after it is closed
	rootWd int
	wg     sync.WaitGroup

	mu      sync.Mutex
	tracked map[string]bool       // IDs with a running tracker
	wake    map[int]chan struct{} // folder watch -> its tracker
}

// readEvents turns inotify events into trackers and wake-ups until the
// inotify file is closed.
func (w *watcher) readEvents(f *os.File) {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if int(ev.Wd) == w.rootWd {
				if ev.Mask&unix.IN_ISDIR != 0 {
					w.track(unix.ByteSliceToString(name))
				}
				continue
			}
			w.mu.Lock()
			if ch, ok := w.wake[int(ev.Wd)]; ok {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
			w.mu.Unlock()
		}
	}
}

// track starts a tracker for container id unless one runs.
func (w *watcher) track(id string) {
	if !ids.Match(id) || w.ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tracked[id] {
		return
	}
	w.tracked[id] = true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.follow(id)
	}()
}

// untrack ends the tracking of id; a folder made again under that ID
// later (after a delete) gets a new tracker.
func (w *watcher) untrack(id string) {
	w.mu.Lock()
	delete(w.tracked, id)
	w.mu.Unlock()
}

// follow delivers the exit of container id, once.
func (w *watcher) follow(id string) {
	defer w.untrack(id)
	for w.ctx.Err() == nil {
		c, err := w.m.load(w.ctx, id)
		if err != nil {
			return // deleted before we looked
		}
		if c.rec == nil && errors.Is(c.err, os.ErrNotExist) {
			if !w.waitRecord(c.st) {
				return
			}
			continue
		}
		if c.rec == nil {
			w.send(Event{ID: id, Err: c.err})
			return
		}
		exit, err := c.Wait(w.ctx)
		if w.ctx.Err() != nil {
			return
		}
		if ok, _ := c.st.Exists(); err != nil && !ok {
			return // deleted while we waited: the deleter has seen its end
		}
		if err != nil {
			w.send(Event{ID: id, Err: err})
			return
		}
		w.send(Event{ID: id, Exit: exit})
		return
	}
}

// send delivers ev unless the subscription ended. The tracker stops
// counting as running first, so a folder made again right after the
// receiver deletes this one is tracked anew.
func (w *watcher) send(ev Event) {
	w.untrack(ev.ID)
	select {
	case w.out <- ev:
	case <-w.ctx.Done():
	}
}

// waitRecord waits, with an inotify watch on the folder, until its record
// exists. It reports false when the folder is gone or ctx is done.
func (w *watcher) waitRecord(st *store.Folder) bool {
	dir := st.Dir()
	wd, err := -1, error(nil)
	cerr := w.rc.Control(func(fd uintptr) {
		wd, err = unix.InotifyAddWatch(int(fd), dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE_SELF|unix.IN_ONLYDIR)
	})
	if cerr != nil || err != nil {
		return false
	}
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.wake[wd] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.wake, wd)
		w.mu.Unlock()
		w.rc.Control(func(fd uintptr) { unix.InotifyRmWatch(int(fd), uint32(wd)) })
	}()
	for {
		if st.HasRecord() {
			return true
		}
		if _, err := os.Stat(dir); err != nil {
			return false
		}
		select {
		case <-ch:
		case <-w.ctx.Done():
			return false
		}
	}
}
