package runtime

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// TestWithin: what lies in a container's folder (and is removed with it).
func TestWithin(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/run/tether/c1", true},
		{"/run/tether/c1/bundle", true},
		{"/run/tether/c1/../c1/ckpt", true},
		{"/run/tether/c10", false},
		{"/run/tether/.checkpoints/c1", false},
		{"/run/tether", false},
		{"/srv/..c1", false},
	} {
		if got := within("/run/tether/c1", c.path); got != c.want {
			t.Errorf("within(/run/tether/c1, %s) = %v; want %v", c.path, got, c.want)
		}
	}
}

// TestWaitRemovedFromJournal: a Wait whose auto-remove container's folder
// is gone answers with the exit its shim journaled after the container
// was created (not an older container's of the same ID); without
// auto-remove, or without such a line, it is not found.
func TestWaitRemovedFromJournal(t *testing.T) {
	root := t.TempDir()
	m, err := New(Opts{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 12, 5, 16, 0, 0, 0, time.UTC)
	three, nine := 3, 9
	for _, ev := range []store.Event{
		{Time: created.Add(-time.Hour), Type: store.EventExited, ID: "c1", Pid: 10, ExitStatus: &nine},
		{Time: created.Add(time.Second), Type: store.EventExited, ID: "c1", Pid: 11, ExitStatus: &three},
		{Time: created.Add(2 * time.Second), Type: store.EventDeleted, ID: "c1"},
	} {
		if err := store.AppendEvent(root, ev); err != nil {
			t.Fatal(err)
		}
	}
	handle := func(autoRemove bool) *Container {
		return &Container{m: m, id: "c1", st: m.folder("c1"), rec: &store.Record{Version: store.Version, ID: "c1",
			Bundle: "/b", Runtime: "runc", CreatedAt: created, AutoRemove: autoRemove}}
	}
	exit, err := handle(true).Wait(context.Background())
	if err != nil || exit.Status != 3 || exit.Pid != 11 || !exit.ExitedAt.Equal(created.Add(time.Second)) {
		t.Errorf("wait of a removed auto-remove container: %+v, %v; want its journaled exit 3", exit, err)
	}
	if _, err := handle(false).Wait(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("wait of a removed container: %v; want ErrNotFound", err)
	}
	if _, err := handle(true).WaitExec(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("wait of an exec never journaled: %v; want ErrNotFound", err)
	}
}
