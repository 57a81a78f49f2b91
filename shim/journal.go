package shim

import (
	"os"
	"time"

	"github.com/tether-run/tether/store"
)

// journal appends ev to the root's event journal (store.AppendEvent),
// with the time (now, unless set: an exit's is its record's), the
// container's ID and this shim's pid filled in. It
// never fails an operation: the journal is volatile, the exit records are
// the durable truth, and a line that cannot be written is logged.
func (s *Shim) journal(ev store.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	ev.ID = s.id
	ev.ShimPid = os.Getpid()
	if err := store.AppendEvent(s.st.Root(), ev); err != nil {
		s.log.WithError(err).WithField("event", ev.Type).Warn("event not journaled")
	}
}

// journalStart journals that p started (init: started; an exec'd
// process: exec_started), once.
func (s *Shim) journalStart(p *process) {
	p.startJournal.Do(func() {
		typ := store.EventStarted
		if p != s.init {
			typ = store.EventExecStarted
		}
		s.journal(store.Event{Type: typ, Exec: p.id, Pid: p.pidNow()})
	})
}

// journalExit journals the end of p from its exit record, after its
// start when it had one that was not journaled yet (it ended first).
func (s *Shim) journalExit(p *process, rec *store.ExitRecord) {
	if p != s.init || p.starting.Load() {
		s.journalStart(p)
	}
	typ := store.EventExited
	if p != s.init {
		typ = store.EventExecExited
	}
	status := rec.Status
	s.journal(store.Event{Time: rec.ExitedAt, Type: typ, Exec: p.id, Pid: rec.Pid, ExitStatus: &status, Reason: rec.Reason,
		OOMKilled: rec.OOMKilled, OOMKills: rec.OOMKills})
}

// journalOOM journals an OOM kill in the container, kills being the
// count so far.
func (s *Shim) journalOOM(kills uint64, at time.Time) {
	s.journal(store.Event{Time: at.UTC(), Type: store.EventOOM, OOMKills: kills})
}
