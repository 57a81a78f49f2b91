package shim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/tether-run/tether/internal/proc"
	"golang.org/x/sys/unix"
)

// leftoverTimeout bounds the killing of what a failed create left behind.
const leftoverTimeout = 5 * time.Second

// killLeftovers kills every process still below the shim after a failed
// create. A runtime killed half-way (its deadline passed, or it was
// SIGKILLed) can leave a half-made container process or a hook behind;
// they are re-parented to the shim, the child subreaper, and nothing else
// runs below it yet, so every child is a leftover. Each is signalled by
// identity (pidfd), never by a bare pid the reaper may have freed.
func (s *Shim) killLeftovers() {
	deadline := time.Now().Add(leftoverTimeout)
	for {
		kids := children(os.Getpid())
		if len(kids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.log.WithField("pids", kids).Warn("processes still below the shim after a failed create")
			return
		}
		for _, pid := range kids {
			if id, err := proc.Identify(pid); err == nil {
				s.log.WithField("pid", pid).Info("killing what the failed create left")
				id.Signal(syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond) // the reaper collects them
	}
}

// children lists the live (not zombie) children of pid from /proc.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(n); err == nil && st.PPid == pid && st.State != 'Z' && st.State != 'X' {
			kids = append(kids, n)
		}
	}
	return kids
}

// folderWatch is the shim's watch on its own state folder.
type folderWatch struct {
	off      atomic.Bool // set by delete: the removal is ours
	restored atomic.Int32
}

// watchFolder restores the state folder when it is removed or renamed
// under the running shim (an rm -rf of the root, a tmp cleaner): the shim
// still holds everything that was in it, and without it the container
// would run on invisible to every manager, beyond the reach of
// 'tether delete'. It watches the root for the folder's name going away
// (IN_DELETE_SELF of the folder itself comes only once nothing holds its
// dentry, which may be never) and the folder for its own removal. See
// restoreFolder for what comes back.
func (s *Shim) watchFolder(ctx context.Context) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		s.log.WithError(err).Warn("cannot watch the state folder")
		return
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: served by the poller
	w := &watcher{fd: fd, id: s.id}
	if err := w.add(s.st.Dir()); err != nil {
		f.Close()
		s.log.WithError(err).Warn("cannot watch the state folder")
		return
	}
	go s.watchLoop(ctx, f, w)
}

// watcher holds the two inotify watches on a state folder.
type watcher struct {
	fd, parent, self int
	id               string
}

const (
	parentMask = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	selfMask   = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
)

// add (re)arms the watches on dir and its parent.
func (w *watcher) add(dir string) error {
	var err error
	if w.parent, err = unix.InotifyAddWatch(w.fd, filepath.Dir(dir), parentMask); err != nil {
		return err
	}
	w.self, err = unix.InotifyAddWatch(w.fd, dir, selfMask)
	return err
}

// gone reports whether the events in b say the folder went away.
func (w *watcher) gone(b []byte) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		n := min(len(b), unix.SizeofInotifyEvent+int(ev.Len))
		name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:n], "\x00"))
		b = b[n:]
		switch {
		case int(ev.Wd) == w.self && ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			return true
		case int(ev.Wd) == w.parent && ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			return true
		case int(ev.Wd) == w.parent && ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 && name == w.id:
			return true
		}
	}
	return false
}

// watchLoop waits for the folder to go and brings it back, until the
// shim shuts down.
func (s *Shim) watchLoop(ctx context.Context, f *os.File, w *watcher) {
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) }) // no goroutine parked meanwhile
	defer stop()
	buf := make([]byte, 64*1024)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		if !w.gone(buf[:n]) || s.watch.off.Load() {
			continue
		}
		if s.st.HasRecord() {
			continue // already back (a rename of the root and back, say)
		}
		if err := s.restoreFolder(ctx); err != nil {
			s.log.WithError(err).Error("state folder removed and not fully restored")
		}
		if err := w.add(s.st.Dir()); err != nil {
			s.log.WithError(err).Warn("cannot watch the restored state folder")
		}
	}
}

// restoreFolder makes the state folder again from what the shim holds:
// the container record, the shim's and the processes' pid records, the
// exit records of those that ended, room for the others', fresh output
// logs (what was written before is gone with the old ones); then the front
// end's OnRestore makes its own files (tether's: a new shim log and a new
// control socket). The container itself is untouched.
func (s *Shim) restoreFolder(ctx context.Context) error {
	if err := s.st.Restore(); err != nil {
		return err
	}
	errs := []error{s.st.WriteRecord(s.rec), s.st.PutShimPid(s.self), s.restoreProcess(s.init)}
	s.mu.Lock()
	execs := make([]*process, 0, len(s.execs))
	for _, p := range s.execs {
		execs = append(execs, p)
	}
	s.mu.Unlock()
	if len(execs) > 0 {
		errs = append(errs, s.st.MakeExecDir())
	}
	for _, p := range execs {
		errs = append(errs, s.restoreProcess(p))
	}
	if s.opts.OnRestore != nil {
		errs = append(errs, s.opts.OnRestore(ctx))
	}
	s.watch.restored.Add(1)
	s.log.Warn("the state folder was removed under the running shim and has been restored; output written before that is lost")
	return errors.Join(errs...)
}

// restoreProcess writes back one process's pid record, and its exit
// record or the room for it, and reopens its output log.
func (s *Shim) restoreProcess(p *process) error {
	_, pid, exit := p.current()
	var errs []error
	if pid.Pid > 0 {
		errs = append(errs, p.files.PutPid(pid))
	}
	if exit != nil {
		errs = append(errs, p.files.WriteExit(exit))
	} else {
		errs = append(errs, p.files.Reserve())
	}
	if p.io != nil && p.io.log != nil && exit == nil {
		errs = append(errs, p.io.log.Reopen())
	}
	return errors.Join(errs...)
}

// warnDropped logs that output could not be written to a log (most often
// a full disk): the shim went on draining the pipes and dropped it, so the
// container never blocked.
func (s *Shim) warnDropped(err error) {
	s.log.WithError(err).Warn("output dropped: it could not be written to the log")
}

// warnSink logs a front end's output sink that failed and was dropped.
func (s *Shim) warnSink(err error) {
	s.log.WithError(err).Warn("output sink failed: it gets no more output; the log goes on")
}
