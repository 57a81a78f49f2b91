package shim

import (
	"os"
	"time"

	"github.com/tether-run/tether/store"
)

// journal appends ev to the root's event journal (store.AppendEvent),
// with the time, the container's ID and this shim's pid filled in. It
// never fails an operation: the journal is volatile, the exit records are
// the durable truth, and a line that cannot be written is logged.
func (s *Shim) journal(ev store.Event) {
	ev.Time = time.Now().UTC()
	ev.ID = s.id
	ev.ShimPid = os.Getpid()
	if err := store.AppendEvent(s.st.Root(), ev); err != nil {
		s.log.WithError(err).WithField("event", ev.Type).Warn("event not journaled")
	}
}

// journalExit journals the end of p from its exit record.
func (s *Shim) journalExit(p *process, rec *store.ExitRecord) {
	typ := store.EventExited
	if p != s.init {
		typ = store.EventExecExited
	}
	status := rec.Status
	s.journal(store.Event{Type: typ, Exec: p.id, Pid: rec.Pid, ExitStatus: &status, Reason: rec.Reason})
}
