package coretest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/store"
)

// newCore writes the record of container id (bundle b, e's runtime, its
// root under e.Root) into a fresh folder and makes a core on it, as a
// front end does; opts gives the rest (IO, extra files). The core is
// closed when the test ends; deleting the container is the test's.
func newCore(ctx context.Context, t *testing.T, e *testutil.Env, id, b string, opts shim.Options) (*shim.Shim, *store.Folder) {
	t.Helper()
	folder := store.At(e.Root, id)
	if err := folder.Make(); err != nil {
		t.Fatal(err)
	}
	boot, err := proc.BootID()
	if err != nil {
		t.Fatal(err)
	}
	rec := &store.Record{ID: id, Bundle: b, Runtime: e.Runtime, RuntimeRoot: filepath.Join(e.Root, ".oci", e.Runtime),
		CreatedAt: time.Now().UTC(), BootID: boot}
	if err := folder.WriteRecord(rec); err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Record, opts.NoFolderWatch = folder, rec, true
	core, err := shim.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(core.Close)
	return core, folder
}
