package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// OOMKills returns how many processes the kernel's OOM killer has killed
// in c's memory group since it was made (v2 memory.events oom_kill, which
// counts descendant groups too; v1 memory.oom_control oom_kill). The
// kernel counts a kill before it sends the SIGKILL, so once a reaper has
// seen a process die of it, the count already includes it.
//
// It fails with ErrNotFound when the memory controller is in no hierarchy
// of c or the group is gone, and with ErrNotSupported on a v1 kernel
// older than 4.13 (no oom_kill line).
func (c *Cgroup) OOMKills() (uint64, error) {
	dir, version, err := c.memoryDir()
	if err != nil {
		return 0, err
	}
	name := "memory.events"
	if version == 1 {
		name = "memory.oom_control"
	}
	kv, err := readKV(dir, name)
	if err != nil {
		return 0, err
	}
	n, ok := kv["oom_kill"]
	if !ok {
		return 0, fmt.Errorf("%s in %s has no oom_kill counter: %w (Linux 4.13 or later has it)", name, dir, ErrNotSupported)
	}
	return n, nil
}

// memoryDir returns the folder of c's memory group and its version.
func (c *Cgroup) memoryDir() (string, int, error) {
	if dir, ok := c.V1["memory"]; ok {
		return dir, 1, nil
	}
	has, err := c.v2Has("memory")
	if err != nil {
		return "", 0, err
	}
	if !has {
		return "", 0, fmt.Errorf("%w: the memory controller is in no hierarchy of %s", ErrNotFound, c)
	}
	return c.Unified, 2, nil
}

// OOMEvent is what an OOMWatcher reports each time the OOM killer acts in
// the group.
type OOMEvent struct {
	// Time is when the watcher noticed.
	Time time.Time
	// Kills is the group's oom_kill counter after the event: the total
	// since the group was made, not the number of new kills. On a v1
	// kernel without that counter it is the number of OOM notifications
	// the watcher has seen.
	Kills uint64
}

// OOMWatcher reports OOM kills in one memory group as they happen:
// through an inotify watch on memory.events in v2, and through an eventfd
// registered on memory.oom_control (cgroup.event_control) in v1. It holds
// one or two file descriptors and one goroutine, all released by Close.
type OOMWatcher struct {
	events chan OOMEvent
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	ctxOff atomic.Pointer[func() bool] // set after AfterFunc returned; Close may run first
	src    source
	err    error // set by run before done is closed
}

// source is the kernel side of a watcher: wait blocks until the group
// may have changed, kills reads the counter, close releases everything.
type source interface {
	wait(stop <-chan struct{}) (removed bool, err error)
	kills() (uint64, error)
	close()
}

// WatchOOM starts watching c's memory group for OOM kills. Events are
// sent on Events, one per rise of the counter; a reader that falls behind
// gets later events with the latest total (no event blocks the watcher
// for good: Close ends a pending send). The watcher stops when ctx is
// done, when Close is called, or when the group is removed; Events is
// then closed.
//
// It fails with ErrNotFound when the memory controller is in no hierarchy
// of c or the group is gone.
func (c *Cgroup) WatchOOM(ctx context.Context) (*OOMWatcher, error) {
	dir, version, err := c.memoryDir()
	if err != nil {
		return nil, err
	}
	var src source
	if version == 1 {
		src, err = newEventfdSource(dir)
	} else {
		src, err = newInotifySource(dir)
	}
	if err != nil {
		return nil, err
	}
	w := &OOMWatcher{events: make(chan OOMEvent, 1), stop: make(chan struct{}), done: make(chan struct{}), src: src}
	last, err := src.kills()
	if err != nil {
		src.close()
		return nil, err
	}
	go w.run(last)
	off := context.AfterFunc(ctx, func() { w.Close() })
	w.ctxOff.Store(&off)
	return w, nil
}

// Events returns the channel of OOM events, closed when the watcher stops.
func (w *OOMWatcher) Events() <-chan OOMEvent { return w.events }

// Err returns why a stopped watcher stopped: nil after Close or the end
// of its context, an error wrapping ErrNotFound once the group was
// removed, another error if reading failed. It blocks until the watcher
// has stopped.
func (w *OOMWatcher) Err() error {
	<-w.done
	return w.err
}

// Close stops the watcher, waits for its goroutine and releases its file
// descriptors. It returns nil and may be called more than once.
func (w *OOMWatcher) Close() error {
	w.once.Do(func() {
		if off := w.ctxOff.Load(); off != nil {
			(*off)()
		}
		close(w.stop)
		w.src.close() // wakes a blocked wait
		<-w.done
	})
	return nil
}

func (w *OOMWatcher) run(last uint64) {
	defer close(w.done)
	defer close(w.events)
	for {
		removed, err := w.src.wait(w.stop)
		select {
		case <-w.stop:
			return
		default:
		}
		if err != nil {
			w.err = err
			return
		}
		n, err := w.src.kills()
		if err == nil && n > last {
			last = n
			if !w.send(OOMEvent{Time: time.Now(), Kills: n}) {
				return
			}
		}
		if removed || errors.Is(err, ErrNotFound) {
			w.err = fmt.Errorf("oom watch: %w: the group was removed", ErrNotFound)
			return
		}
		if err != nil {
			w.err = err
			return
		}
	}
}

// send delivers ev, replacing an undelivered older one (it carries a
// smaller total), unless the watcher is stopped.
func (w *OOMWatcher) send(ev OOMEvent) bool {
	for {
		select {
		case w.events <- ev:
			return true
		case <-w.stop:
			return false
		default:
		}
		select {
		case <-w.events:
		default:
		}
	}
}

// groupGone reports whether dir no longer exists.
func groupGone(dir string) bool {
	_, err := os.Stat(dir)
	return errors.Is(err, os.ErrNotExist)
}
