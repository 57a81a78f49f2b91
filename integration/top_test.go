package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// TestTop: Container.Top lists the container's processes through the
// shim's pids (the runtime's ps) with host pids, parent, user names from
// the container's /etc/passwd, CPU time and command lines; also from a new
// manager. Edits to the rootfs's passwd show: the names come from the
// container, not the host.
func TestTop(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b := e.Bundle("sh", "-c", "sleep 1001 & i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; wait")
		if err := os.WriteFile(b+"/rootfs/etc/passwd", []byte("toor:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		id := "top-" + e.Runtime
		c, err := e.Manager().Create(ctx, id, b, runtime.CreateOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var ps []runtime.Process
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 30*time.Second, "sh (with CPU time used) and sleep in top", func() bool {
			c2, err := e.NewManager().Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ps, err = c2.Top(ctx); err != nil {
				t.Fatal(err)
			}
			return len(ps) == 2 && (ps[0].CPUTime > 0 || ps[1].CPUTime > 0)
		})
		init, sleep := ps[0], ps[1]
		if init.Pid != st.Pid {
			init, sleep = sleep, init
		}
		if init.Pid != st.Pid || sleep.PPid != init.Pid || !strings.HasPrefix(init.Command, "sh -c sleep 1001") ||
			sleep.Command != "sleep 1001" || init.User != "toor" || init.UID != 0 || sleep.User != "toor" || init.CPUTime == 0 {
			t.Fatalf("top %+v: want init %d (sh, user toor) and its child sleep 1001", ps, st.Pid)
		}
		if err := c.Delete(ctx, true); err != nil {
			t.Fatal(err)
		}
	})
}
