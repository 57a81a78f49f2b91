package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// cliCommand matches a tether command line in a message ("tether delete",
// "'tether list'") or a flag of it ("--root"); "tether-shim" and "a newer
// tether," are not commands.
var cliCommand = regexp.MustCompile(`\btether [a-z-]|--[a-z]`)

// TestNoCLIHints: the library's errors and state reasons name no tether
// command; what can be done comes as data (RemedyError, State.Remedy)
// for the CLI to phrase. Each case is a folder a real manager can meet:
// none, without a record (create cut off), with a corrupt record, with an
// unreadable shim.pid; a create on a taken ID or with a bundle whose
// terminal setting disagrees; a root that cannot be made, a runtime not
// on PATH.
func TestNoCLIHints(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	m, err := New(Opts{Root: root, Runtime: "/bin/true", ShimBinary: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	plain := func(what, msg string) {
		t.Helper()
		if cliCommand.MatchString(msg) {
			t.Errorf("%s names a CLI command: %q", what, msg)
		}
	}
	wantRemedy := func(what string, err error, sentinel error, r Remedy, id string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		plain(what, err.Error())
		if sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("%s: %v, want %v", what, err, sentinel)
		}
		re := RemedyOf(err)
		if re == nil || re.Remedy != r || re.ID != id {
			t.Errorf("%s: remedy %+v, want %d about %s", what, re, r, id)
		}
	}
	stateOf := func(id string, r Remedy) {
		t.Helper()
		c, err := m.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != StatusUnknown || st.Reason == "" || st.Remedy != r {
			t.Errorf("state of %s: %+v, want unknown with a reason and remedy %d", id, st, r)
		}
		plain("reason of "+id, st.Reason)
		wantRemedy("start of "+id, c.Start(ctx), nil, r, id)
	}

	_, err = New(Opts{Root: "/proc/version/sub"}) // under a file
	wantRemedy("a root under a file", err, nil, RemedyOtherRoot, "")
	_, err = (&Manager{opts: Opts{Runtime: "nosuch-oci-runtime"}}).lookRuntime()
	wantRemedy("a runtime not on PATH", err, ErrRuntimeNotFound, RemedyOtherRuntime, "")

	_, err = m.Load(ctx, "nosuch")
	wantRemedy("load of a missing container", err, ErrNotFound, RemedyListIDs, "nosuch")

	// A folder whose create was cut off before the record.
	if err := store.At(root, "half").Make(); err != nil {
		t.Fatal(err)
	}
	stateOf("half", RemedyForceDelete)

	// A corrupt record.
	bad := store.At(root, "bad")
	if err := bad.Make(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad.Dir(), "container.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	stateOf("bad", RemedyForceDelete)
	for _, st := range mustList(t, m) {
		plain("listed reason of "+st.ID, st.Reason)
		if st.Remedy != RemedyForceDelete {
			t.Errorf("listed %s: remedy %d, want a forced delete", st.ID, st.Remedy)
		}
	}

	// A good record but an unreadable shim.pid: a plain delete refuses.
	pid := store.At(root, "badpid")
	if err := pid.Make(); err != nil {
		t.Fatal(err)
	}
	if err := pid.WriteRecord(&store.Record{Version: store.Version, ID: "badpid", Bundle: "/nonexistent",
		Runtime: "/bin/true", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pid.Dir(), "shim.pid"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := m.Load(ctx, "badpid")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); err != nil || st.Remedy != RemedyForceDelete {
		t.Errorf("state of badpid: %+v, %v; want remedy a forced delete", st, err)
	} else {
		plain("reason of badpid", st.Reason)
	}
	wantRemedy("plain delete of badpid", c.Delete(ctx, false), nil, RemedyForceDelete, "badpid")

	// Create: a taken ID; a bundle without process.terminal and a create
	// asking for a terminal (nothing is left of that one).
	write := func(dir string) error {
		if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "config.json"),
			[]byte(`{"ociVersion":"1.0.2","process":{"args":["true"],"cwd":"/"},"root":{"path":"rootfs"}}`), 0o644)
	}
	_, err = m.Create(ctx, "bad", "", CreateOpts{WriteBundle: write})
	wantRemedy("create on a taken ID", err, ErrExists, RemedyOtherID, "bad")
	_, err = m.Create(ctx, "term", "", CreateOpts{WriteBundle: write, Terminal: true})
	wantRemedy("create -t of a bundle without a terminal", err, ErrInvalid, RemedyTerminalBundle, "term")
	if re := RemedyOf(err); re == nil || !re.Terminal {
		t.Errorf("terminal mismatch: %+v, want Terminal set as asked", re)
	}
	if _, err := os.Stat(filepath.Join(root, "term")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused create left its folder: %v", err)
	}
}

func mustList(t *testing.T, m *Manager) []*State {
	t.Helper()
	states, err := m.List(context.Background())
	if err != nil || len(states) != 2 {
		t.Fatalf("list: %d states, %v; want half and bad", len(states), err)
	}
	return states
}
