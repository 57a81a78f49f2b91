package coretest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/shim"
)

// TestCoreCreateExtrasAndCommand: what podman's front end asks of the
// core beyond tether's own. Options.ExtraFiles reach init as fds 3...
// (--preserve-fds) and init reads them; StartCommand runs a helper through
// the core's reaper and its wait gives the helper's own status, while the
// core still records init's exit (the reaper is shared, not raced).
func TestCoreCreateExtrasAndCommand(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) { coreCreateExtras(t, rt) })
	}
}

func coreCreateExtras(t *testing.T, rt string) {
	e := testutil.NewEnv(t, rt)
	id := "extras-" + rt
	b := e.BundleWith(bundle.Options{Args: []string{"sh", "-c", "cat <&3; exit 5"}})
	extra := filepath.Join(e.Root, "extra")
	if err := os.WriteFile(extra, []byte("from-fd-3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ef, err := os.Open(extra)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	var out testutil.Buffer
	core, _ := newCore(ctx, t, e, id, b, shim.Options{InitIO: shim.IO{NoLog: true, Stdout: &out}, ExtraFiles: []*os.File{ef}})
	if _, err := core.Create(ctx); err != nil {
		t.Fatalf("create: %v", err)
	}
	defer core.Delete(context.Background(), true)
	if err := core.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	x, err := core.Wait(ctx, "")
	if err != nil || x.Status != 5 {
		t.Fatalf("wait init: %+v, %v", x, err)
	}
	if got := out.String(); !strings.Contains(got, "from-fd-3") {
		t.Fatalf("init did not read its extra file on fd 3: stdout %q", got)
	}
	waitCmd, err := core.StartCommand(exec.Command("/bin/sh", "-c", "exit 3"))
	if err != nil {
		t.Fatalf("start command: %v", err)
	}
	if st, err := waitCmd(); st != 3 {
		t.Fatalf("command status %d (%v), want 3", st, err)
	}
}
