package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/store"
)

// Auto-remove (CreateOpts.AutoRemove) is the shim's work: it removes the
// container once init has exited. What is here is the manager's part:
// finishing the removal of a container whose shim died before it could
// (recovery), and answering a Wait whose container was removed meanwhile.

// Removed reports whether loading found this auto-remove container ended
// with its shim gone and removed it (see CreateOpts.AutoRemove): State and
// Wait then give its last state and exit, and the container is gone.
func (c *Container) Removed() bool { return c.removed != nil }

// finishAutoRemove removes an auto-remove container that no shim serves
// and that has ended: its exit recorded (the shim died before removing
// it) or lost (the shim died first and so did init). It makes sure the
// journal has the exit (journaling it from the record, or as unknown,
// when the shim could not), removes the runtime's container and the
// folder under its lock, and journals deleted. The exit found is kept in
// c.removed for State and Wait. With Opts.NoAdopt (look, change nothing)
// it does nothing.
func (c *Container) finishAutoRemove(ctx context.Context) {
	if c.rec == nil || !c.rec.AutoRemove || c.m.opts.NoAdopt {
		return
	}
	if _, err := c.checkShim(); !shimGone(err) {
		return // a live shim removes it itself; an unreadable shim.pid is left to delete --force
	}
	exit, ok := c.endedWithoutShim()
	if !ok {
		return
	}
	lock, err := c.st.Lock(ctx, true)
	if errors.Is(err, os.ErrNotExist) {
		c.removed = exit // another manager removed it meanwhile
		return
	}
	if err != nil {
		c.m.log.WithError(err).WithField("id", c.id).Warn("auto-remove: folder not locked; not removed")
		return
	}
	defer lock.Close()
	if exit, ok = c.endedWithoutShim(); !ok {
		return // a shim serves it again (adopted, or in-place upgrade)
	}
	c.journalExit(exit)
	if err := c.cleanup(context.WithoutCancel(ctx)); err != nil {
		c.m.log.WithError(err).WithField("id", c.id).Warn("auto-remove")
		return
	}
	c.journal(store.Event{Type: store.EventDeleted})
	c.removed = exit
	c.m.log.WithField("id", c.id).WithField("status", exit.Status).Info("removed the stopped auto-remove container its shim left")
}

// endedWithoutShim is the exit of a container that no shim serves and
// that has ended, by restore's verdict: its record, or the unknown status
// with the reason when nobody recorded it.
func (c *Container) endedWithoutShim() (*ExitRecord, bool) {
	r := c.examine()
	if r.Verdict != restore.Stopped && r.Verdict != restore.Lost {
		return nil, false
	}
	return fromStoreExit(r.Exit), true
}

// journalExit journals init's exit, unless its shim did before it died
// (the shim writes the line right after the durable record).
func (c *Container) journalExit(exit *ExitRecord) {
	if !exit.ExitedAt.IsZero() && c.journaled(store.EventExited, "", exit.ExitedAt) != nil {
		return
	}
	status := exit.Status
	c.journal(store.Event{Time: exit.ExitedAt, Type: store.EventExited, Pid: exit.Pid,
		ExitStatus: &status, Reason: exit.Reason, OOMKilled: exit.OOMKilled, OOMKills: exit.OOMKills})
}

// journal appends an event of this container written by the manager (no
// shim_pid); the time is now unless set. A line that cannot be written
// is logged: the journal is volatile.
func (c *Container) journal(ev store.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	ev.ID = c.id
	if err := store.AppendEvent(c.m.root, ev); err != nil {
		c.m.log.WithError(err).WithField("id", c.id).Warn("event not journaled")
	}
}

// journaled finds the last journal event of this container of type typ
// (for exec'd process exec, "" for init) at or after since; nil when
// the journal has none.
func (c *Container) journaled(typ, exec string, since time.Time) *store.Event {
	j, err := store.OpenJournal(c.m.root, true)
	if err != nil {
		return nil
	}
	defer j.Close()
	var found *store.Event
	for {
		ev, err := j.Next()
		if err != nil {
			return found
		}
		if ev.Type == typ && ev.ID == c.id && ev.Exec == exec && !ev.Time.Before(since) {
			found = &ev
		}
	}
}

// removedExit answers a Wait for a container whose folder is gone: the
// exit of an auto-remove container this handle removed, or, for one its
// shim removed, the exit the shim journaled before it did (a Wait that
// was under way when the container exited). Otherwise ErrNotFound.
func (c *Container) removedExit(exec string) (*ExitRecord, error) {
	if c.removed != nil && exec == "" {
		return c.removed, nil
	}
	if c.rec != nil && c.rec.AutoRemove && c.removed == nil {
		typ := store.EventExited
		if exec != "" {
			typ = store.EventExecExited
		}
		if ev := c.journaled(typ, exec, c.rec.CreatedAt); ev != nil && ev.ExitStatus != nil {
			return &ExitRecord{Pid: ev.Pid, Status: *ev.ExitStatus, ExitedAt: ev.Time, Reason: ev.Reason,
				OOMKilled: ev.OOMKilled, OOMKills: ev.OOMKills}, nil
		}
	}
	what := "container " + c.id
	if exec != "" {
		what = fmt.Sprintf("exec %q of container %s", exec, c.id)
	}
	return nil, withRemedy(RemedyListIDs, c.id, fmt.Errorf("wait: %s: %w: it was removed", what, ErrNotFound))
}

// removedError is what an operation on a container this handle removed
// gets: it is gone.
func (c *Container) removedError() error {
	return withRemedy(RemedyListIDs, c.id, fmt.Errorf("container %s: %w: it had exited and was removed (auto-remove)", c.id, ErrNotFound))
}

// checkpointOutlives refuses a checkpoint that ends an auto-remove
// container (no leaveRunning) while what a restore needs lies in the
// container's folder, which the removal deletes: the image folder, or a
// bundle written there. Nothing is done then.
func (c *Container) checkpointOutlives(images string, leaveRunning bool) error {
	if !c.rec.AutoRemove || leaveRunning {
		return nil
	}
	switch {
	case within(c.st.Dir(), images):
		return fmt.Errorf("checkpoint %s: %w: the image folder %s is inside the container's folder, which is removed (--rm) once the checkpoint ends the container: give an image folder outside it, or keep it running", c.id, ErrInvalid, images)
	case within(c.st.Dir(), c.rec.Bundle):
		return fmt.Errorf("checkpoint %s: %w: its bundle is inside its folder, which is removed (--rm) once the checkpoint ends the container, so a restore would have no bundle: keep it running, or run it from a bundle folder of its own", c.id, ErrInvalid)
	}
	return nil
}

// within reports whether path is dir or lies under it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
