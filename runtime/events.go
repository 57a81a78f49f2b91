package runtime

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"time"

	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// Types of a LifecycleEvent (LifecycleEvent.Type).
const (
	EventCreated      = store.EventCreated
	EventStarted      = store.EventStarted
	EventRestored     = store.EventRestored
	EventPaused       = store.EventPaused
	EventResumed      = store.EventResumed
	EventExecStarted  = store.EventExecStarted
	EventExecExited   = store.EventExecExited
	EventExited       = store.EventExited
	EventCheckpointed = store.EventCheckpointed
	EventAdopted      = store.EventAdopted
	EventDeleted      = store.EventDeleted
	EventStopSignaled = store.EventStopSignaled
	EventOOM          = store.EventOOM
)

// LifecycleEvent is one thing that happened to a container, as its shim
// journaled it (see Events). Its JSON form is the one `tether events
// --format json` prints.
type LifecycleEvent struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	ID   string    `json:"id"`
	// Exec names the exec'd process of exec_started and exec_exited.
	Exec string `json:"exec,omitempty"`
	// Pid is init's or the exec'd process's pid.
	Pid int `json:"pid,omitempty"`
	// ExitStatus is set for exited and exec_exited: the code, or 128+N
	// after signal N.
	ExitStatus *int `json:"exit_status,omitempty"`
	// Reason says why an exit status is not the process's own doing.
	Reason string `json:"reason,omitempty"`
	// OOMKilled is set on exited when the OOM killer killed a process of
	// the container while it ran (the exit record's oom_killed).
	OOMKilled bool `json:"oom_killed,omitempty"`
	// OOMKills is the OOM kill count: so far (oom), or over the
	// container's life (exited, with OOMKilled).
	OOMKills uint64 `json:"oom_kills,omitempty"`
	// Signal is what stop sent first (stop_signaled).
	Signal int `json:"signal,omitempty"`
	// ImagePath is the checkpoint folder (checkpointed, restored).
	ImagePath string `json:"image_path,omitempty"`
	// ShimPid is the shim that saw it; 0 when FromRecord.
	ShimPid int `json:"shim_pid,omitempty"`
	// FromRecord says the event was rebuilt from an exit record because
	// the journal did not have it (a shim died between writing the record
	// and the journal line, or a manager recorded a lost exit).
	FromRecord bool `json:"from_record,omitempty"`
}

// EventsOpts are the options of Events; the zero value streams what
// happens from now on, for every container.
type EventsOpts struct {
	// Since, when not zero, first replays what happened since then, from
	// the journal and from the exit records of the containers still in
	// the root, so no exit is lost even when no manager ran.
	Since time.Time
	// Until, when not zero, ends the stream once that time has passed
	// (and the replay is done); events after it are not delivered.
	Until time.Time
	// ID, when not empty, keeps only that container's events.
	ID string
}

// pollInterval backs up the journal's inotify wake-ups (a root made after
// the stream began, a missed wake-up).
const pollInterval = time.Second

// Events streams the lifecycle events of every container of the root:
// created, started, restored, paused, resumed, exec_started, exec_exited,
// exited (with the OOM flag and count), oom, checkpointed, adopted,
// stop_signaled, deleted. The shims write
// them to the root's journal (ROOT/events.log), so the stream needs no
// connection to any shim and sees every shim, including those started
// after it began and those that ended. The channel is closed when ctx ends
// or opts.Until has passed.
//
// With opts.Since the stream first replays, in the journal's order, its
// events since then, with every exit (of init or an exec'd process) whose
// exit record says it ended since then but that the journal lacks; the
// exit records are durable, so after a crash of everything an exit is
// never lost while its container is in the root. The journal keeps the
// last 4 to 8 MiB of events (store.JournalMaxSize): older ones, and
// non-exit events lost in a machine crash, are not replayed.
func (m *Manager) Events(ctx context.Context, opts EventsOpts) (<-chan LifecycleEvent, error) {
	if opts.ID != "" {
		if err := ids.ValidID(opts.ID); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(m.root, 0o711); err != nil {
		return nil, err
	}
	wake, stop, err := watchRoot(m.root)
	if err != nil {
		return nil, err
	}
	j, err := store.OpenJournal(m.root, !opts.Since.IsZero())
	if err != nil {
		stop()
		return nil, err
	}
	s := &eventStream{m: m, opts: opts, j: j, out: make(chan LifecycleEvent, 64), synth: map[exitKey]bool{}}
	go func() {
		defer close(s.out)
		defer stop()
		defer j.Close()
		if !opts.Since.IsZero() && !s.replay(ctx) {
			return
		}
		s.follow(ctx, wake)
	}()
	return s.out, nil
}

// exitKey names one process's end.
type exitKey struct {
	id, exec string
	pid      int
}

// eventStream is one Events subscription.
type eventStream struct {
	m     *Manager
	opts  EventsOpts
	j     *store.JournalReader
	out   chan LifecycleEvent
	synth map[exitKey]bool // exits delivered from records, skipped in the journal
}

// replay delivers the journal's events since opts.Since merged with the
// exits only the records know. It reports false when ctx ended.
func (s *eventStream) replay(ctx context.Context) bool {
	var evs []LifecycleEvent
	seen := map[exitKey]bool{}
	for {
		ev, err := s.j.Next()
		if err != nil {
			break
		}
		if k, ok := exitKeyOf(ev); ok {
			seen[k] = true
		}
		if !ev.Time.Before(s.opts.Since) && s.wanted(ev.ID) {
			evs = append(evs, fromStoreEvent(ev))
		}
	}
	for _, ev := range s.recordedExits() {
		k := exitKey{ev.ID, ev.Exec, ev.Pid}
		if !seen[k] {
			s.synth[k] = true
			evs = insertByTime(evs, ev)
		}
	}
	for _, ev := range evs {
		if !s.send(ctx, ev) {
			return false
		}
	}
	return true
}

// insertByTime puts ev before the first event later than it, keeping the
// journal's own order (a start journaled a moment after the exit it
// precedes stays before it).
func insertByTime(evs []LifecycleEvent, ev LifecycleEvent) []LifecycleEvent {
	i := 0
	for i < len(evs) && !evs[i].Time.After(ev.Time) {
		i++
	}
	return slices.Insert(evs, i, ev)
}

// recordedExits are the exits since opts.Since that the exit records of
// the containers in the root hold.
func (s *eventStream) recordedExits() []LifecycleEvent {
	ents, err := os.ReadDir(s.m.root)
	if err != nil {
		return nil
	}
	var out []LifecycleEvent
	for _, e := range ents {
		if !e.IsDir() || !ids.Match(e.Name()) || !s.wanted(e.Name()) {
			continue
		}
		st := store.At(s.m.root, e.Name())
		out = s.addExit(out, e.Name(), "", st.Init())
		names, _ := st.Execs()
		for _, n := range names {
			out = s.addExit(out, e.Name(), n, st.Exec(n))
		}
	}
	return out
}

func (s *eventStream) addExit(out []LifecycleEvent, id, exec string, p store.Proc) []LifecycleEvent {
	rec, err := p.ReadExit()
	if err != nil || rec.ExitedAt.Before(s.opts.Since) {
		return out
	}
	typ := EventExited
	if exec != "" {
		typ = EventExecExited
	}
	status := rec.Status
	return append(out, LifecycleEvent{Time: rec.ExitedAt, Type: typ, ID: id, Exec: exec, Pid: rec.Pid,
		ExitStatus: &status, Reason: rec.Reason, OOMKilled: rec.OOMKilled, OOMKills: rec.OOMKills, FromRecord: true})
}

// follow delivers the journal's new lines as they come.
func (s *eventStream) follow(ctx context.Context, wake <-chan struct{}) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		for {
			ev, err := s.j.Next()
			if errors.Is(err, io.EOF) || err != nil {
				break
			}
			if k, ok := exitKeyOf(ev); ok && s.synth[k] {
				delete(s.synth, k)
				continue
			}
			if !s.wanted(ev.ID) || ev.Time.Before(s.opts.Since) {
				continue
			}
			if !s.send(ctx, fromStoreEvent(ev)) {
				return
			}
		}
		if s.past() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

// past reports whether opts.Until has passed.
func (s *eventStream) past() bool {
	return !s.opts.Until.IsZero() && time.Now().After(s.opts.Until)
}

func (s *eventStream) wanted(id string) bool { return s.opts.ID == "" || s.opts.ID == id }

// send delivers ev unless it is after opts.Until; false when ctx ended.
func (s *eventStream) send(ctx context.Context, ev LifecycleEvent) bool {
	if !s.opts.Until.IsZero() && ev.Time.After(s.opts.Until) {
		return true
	}
	select {
	case s.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func exitKeyOf(ev store.Event) (exitKey, bool) {
	if ev.Type != store.EventExited && ev.Type != store.EventExecExited {
		return exitKey{}, false
	}
	return exitKey{ev.ID, ev.Exec, ev.Pid}, true
}

func fromStoreEvent(ev store.Event) LifecycleEvent {
	return LifecycleEvent{Time: ev.Time, Type: ev.Type, ID: ev.ID, Exec: ev.Exec, Pid: ev.Pid,
		ExitStatus: ev.ExitStatus, Reason: ev.Reason, OOMKilled: ev.OOMKilled, OOMKills: ev.OOMKills,
		Signal: ev.Signal, ImagePath: ev.ImagePath, ShimPid: ev.ShimPid}
}

// watchRoot wakes the returned channel when a file in root is written,
// made or renamed into it (the journal and its rotation). stop ends it.
func watchRoot(root string) (<-chan struct{}, func(), error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, root, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, nil, os.NewSyscallError("inotify_add_watch "+root, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: read through the poller
	wake := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 16<<10)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	return wake, func() { f.Close() }, nil
}
