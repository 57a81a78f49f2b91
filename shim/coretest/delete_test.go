package coretest

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/store"
)

// TestCoreDeletesAtOnce: deletes of a stopped container that meet (a
// manager's and the shim's auto-remove) are serialised: every one returns
// nil, the folder is gone and the journal says deleted once.
func TestCoreDeletesAtOnce(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) { coreDeletesAtOnce(t, rt) })
	}
}

func coreDeletesAtOnce(t *testing.T, rt string) {
	e := testutil.NewEnv(t, rt)
	id := "deletes-" + rt
	b := e.BundleWith(bundle.Options{Args: []string{"sh", "-c", "exit 0"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	core, folder := newCore(ctx, t, e, id, b, shim.Options{})
	if _, err := core.Create(ctx); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := core.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	if _, err := core.Wait(ctx, ""); err != nil {
		t.Fatalf("wait: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = core.Delete(ctx, i%2 == 0)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("delete %d: %v", i, err)
		}
	}
	if ok, err := folder.Exists(); ok || err != nil {
		t.Errorf("folder after the deletes: exists %v, %v", ok, err)
	}
	b2, err := os.ReadFile(store.JournalPath(e.Root))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b2), `"type":"deleted"`); n != 1 {
		t.Errorf("journal has %d deleted events; want 1:\n%s", n, b2)
	}
}
