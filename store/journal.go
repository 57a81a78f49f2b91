package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The root's event journal: ROOT/events.log, one JSON Event per line,
// appended by every shim of the root (O_APPEND, one write per line, under
// an flock of the file so that a rotation never loses a line). When it
// passes JournalMaxSize it is renamed to events.log.1 (replacing the one
// before) and a new one begun, so the journal holds at most twice that.
//
// The journal is volatile (no fsync): the durable truth of an exit is its
// exit record, which is written (and synced) before its journal line. A
// reader that must not lose an exit (runtime.Manager.Events with Since)
// also reads the exit records of the containers still in the root.

// Names of the journal's files in the root.
const (
	journalFile    = "events.log"
	journalRotated = "events.log.1"
)

// JournalMaxSize is the size past which the journal is rotated.
const JournalMaxSize = 4 << 20

// Event types, as they appear in Event.Type.
const (
	EventCreated      = "created"       // init made, not started (pid)
	EventStarted      = "started"       // init started
	EventRestored     = "restored"      // init made and running from a checkpoint (pid, image_path)
	EventPaused       = "paused"        // frozen
	EventResumed      = "resumed"       // thawed
	EventExecStarted  = "exec_started"  // exec'd process running (exec, pid)
	EventExecExited   = "exec_exited"   // exec'd process ended (exec, pid, exit_status, reason)
	EventExited       = "exited"        // init ended (pid, exit_status, reason, oom_killed, oom_kills)
	EventCheckpointed = "checkpointed"  // dumped with CRIU (image_path)
	EventAdopted      = "adopted"       // a new shim took the container over from one that died
	EventDeleted      = "deleted"       // the container and its folder are gone
	EventStopSignaled = "stop_signaled" // stop is sending its signal (signal); KILL follows after the grace period
	EventOOM          = "oom"           // the OOM killer killed a process of the container (oom_kills: the count so far)
)

// Event is one line of the journal: something that happened to a
// container, as its shim saw it.
type Event struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	ID      string    `json:"id"`
	// Exec is the exec'd process's ID for exec_started and exec_exited.
	Exec string `json:"exec,omitempty"`
	// Pid is the process's pid (init's, or the exec'd process's).
	Pid int `json:"pid,omitempty"`
	// ExitStatus is set for exited and exec_exited: the code, or 128+N
	// after signal N.
	ExitStatus *int `json:"exit_status,omitempty"`
	// Reason says why an exit status is not the process's own doing.
	Reason string `json:"reason,omitempty"`
	// OOMKilled is set on exited when the exit record says the OOM killer
	// killed a process of the container while it ran.
	OOMKilled bool `json:"oom_killed,omitempty"`
	// OOMKills is the container's OOM kill count: so far (oom), or over
	// its life (exited, with OOMKilled).
	OOMKills uint64 `json:"oom_kills,omitempty"`
	// Signal is the signal stop sent first (stop_signaled).
	Signal int `json:"signal,omitempty"`
	// ImagePath is the checkpoint's folder (checkpointed, restored).
	ImagePath string `json:"image_path,omitempty"`
	// ShimPid is the shim that wrote the line.
	ShimPid int `json:"shim_pid,omitempty"`
}

// JournalPath is the root's event journal.
func JournalPath(root string) string { return filepath.Join(root, journalFile) }

// AppendEvent appends ev (Version set) to the journal of root as one line.
// Each call opens the file, so it works across rotations by other shims.
func AppendEvent(root string, ev Event) error {
	ev.Version = Version
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	b = append(b, '\n')
	for range 5 {
		again, err := appendOnce(root, b)
		if !again {
			return err
		}
	}
	return fmt.Errorf("append to %s: rotated under us too often", JournalPath(root))
}

// appendOnce appends b under the journal's lock; again says the file was
// rotated between open and lock, so the caller must try again.
func appendOnce(root string, b []byte) (again bool, err error) {
	path := JournalPath(root)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return false, fmt.Errorf("open event journal: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("lock event journal: %w", err)
	}
	var held, named unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return false, err
	}
	if err := unix.Stat(path, &named); err != nil || named.Ino != held.Ino {
		return true, nil // rotated (or removed) before we held the lock
	}
	if held.Size+int64(len(b)) > JournalMaxSize && held.Size > 0 {
		if err := os.Rename(path, filepath.Join(root, journalRotated)); err != nil {
			return false, fmt.Errorf("rotate event journal: %w", err)
		}
		return true, nil // the next try makes a new file
	}
	if _, err := f.Write(b); err != nil {
		return false, fmt.Errorf("append to event journal: %w", err)
	}
	return false, nil
}

// JournalReader reads the journal of a root line by line, across
// rotations. Make it with OpenJournal; it is not safe for concurrent use.
type JournalReader struct {
	root  string
	f     *os.File
	ino   uint64
	first bool // f is events.log.1, read before events.log
	buf   []byte
	off   int
}

// OpenJournal returns a reader of the journal of root. With fromStart it
// begins at the oldest line kept (events.log.1 first); otherwise at the
// end, for lines appended from now on. A root without a journal is fine:
// Next reports io.EOF until one appears.
func OpenJournal(root string, fromStart bool) (*JournalReader, error) {
	j := &JournalReader{root: root}
	if fromStart {
		if f, err := os.Open(filepath.Join(root, journalRotated)); err == nil {
			j.f, j.first = f, true
			return j, nil
		}
	}
	if err := j.openCurrent(); err != nil {
		return nil, err
	}
	if !fromStart && j.f != nil {
		if _, err := j.f.Seek(0, io.SeekEnd); err != nil {
			j.f.Close()
			return nil, err
		}
	}
	return j, nil
}

// openCurrent opens events.log; a missing one leaves f nil.
func (j *JournalReader) openCurrent() error {
	f, err := os.Open(JournalPath(j.root))
	if errors.Is(err, os.ErrNotExist) {
		j.f = nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("open event journal: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return err
	}
	j.f, j.ino, j.first = f, st.Ino, false
	return nil
}

// Next returns the next whole line of the journal, or io.EOF when there is
// none yet (call again later: lines appended meanwhile, and a rotation,
// are picked up). A line that does not decode is skipped.
func (j *JournalReader) Next() (Event, error) {
	for {
		if i := bytes.IndexByte(j.buf[j.off:], '\n'); i >= 0 {
			line := j.buf[j.off : j.off+i]
			j.off += i + 1
			var ev Event
			if json.Unmarshal(line, &ev) != nil || ev.Type == "" {
				continue
			}
			return ev, nil
		}
		n, err := j.fill()
		if err != nil {
			return Event{}, err
		}
		if n == 0 && !j.advance() {
			return Event{}, io.EOF
		}
	}
}

// fill reads more of the current file into buf.
func (j *JournalReader) fill() (int, error) {
	if j.f == nil {
		return 0, nil
	}
	if j.off > 0 {
		j.buf = append(j.buf[:0], j.buf[j.off:]...)
		j.off = 0
	}
	var chunk [32 << 10]byte
	n, err := j.f.Read(chunk[:])
	j.buf = append(j.buf, chunk[:n]...)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

// advance moves to the next file once the current one is read to its end:
// from events.log.1 to events.log, or from a rotated events.log to the new
// one. It reports whether it moved.
func (j *JournalReader) advance() bool {
	if j.f == nil || j.first {
		if j.f != nil {
			j.f.Close()
		}
		j.buf, j.off = nil, 0
		j.openCurrent()
		return j.f != nil
	}
	var st unix.Stat_t
	if err := unix.Stat(JournalPath(j.root), &st); err != nil || st.Ino == j.ino {
		return false
	}
	// Rotated: nobody writes the old file any more, and it was read to
	// its end (a torn last line is dropped).
	j.f.Close()
	j.buf, j.off = nil, 0
	j.openCurrent()
	return j.f != nil
}

// Close releases the reader's file.
func (j *JournalReader) Close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
