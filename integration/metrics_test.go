package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// TestMetricsAndUpdate: a container's cgroup usage and limits through
// its shim (runtime.Container.Metrics), changed by Update through runc's
// and crun's update and read back at once, also from a new manager; an
// invalid change is refused and changes nothing.
func TestMetricsAndUpdate(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		b := e.Bundle("sh", "-c", "sleep 1000 & sleep 1000 & sleep 1000 & wait")
		coreEditConfig(t, b, func(cfg map[string]any) {
			res := cfg["linux"].(map[string]any)["resources"].(map[string]any)
			res["memory"] = map[string]any{"limit": 16 << 20, "swap": 16 << 20}
			res["pids"] = map[string]any{"limit": 20}
		}, "")
		c, err := e.Manager().Create(ctx, "m", b, runtime.CreateOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var m *runtime.Metrics
		testutil.Eventually(t, 10*time.Second, "sh and three sleeps in pids.current", func() bool {
			if m, err = c.Metrics(ctx); err != nil {
				t.Fatal(err)
			}
			return m.Pids != nil && m.Pids.Current == 4
		})
		if m.Memory == nil || m.Memory.Limit != 16<<20 || m.Pids.Limit != 20 || m.CPU == nil || m.CPU.UsageNanos == 0 {
			t.Fatalf("metrics %+v: want memory limit 16 MiB, pids limit 20, some CPU used", m)
		}

		swap, mem := int64(8<<20), int64(64<<20)
		if err := c.Update(ctx, &runtime.Resources{Memory: &mem, MemorySwap: &swap}); !errors.Is(err, runtime.ErrInvalid) {
			t.Errorf("update with memory+swap below memory: %v, want ErrInvalid", err)
		}
		if m, _ = c.Metrics(ctx); m.Memory.Limit != 16<<20 {
			t.Errorf("memory limit %d after a refused update, want 16 MiB unchanged", m.Memory.Limit)
		}

		mem, _ = cgroups.ParseMemory("64m")
		cpus, _ := cgroups.ParseCPUs("0.5")
		pids, _ := cgroups.ParsePids("50")
		if err := c.Update(ctx, &runtime.Resources{Memory: &mem, CPU: &cpus, Pids: &pids}); err != nil {
			t.Fatal(err)
		}
		c2, err := e.NewManager().Load(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		m, err = c2.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Memory.Limit != 64<<20 || m.Memory.SwapLimit != 0 || m.CPU.QuotaMicros != 50000 || m.CPU.PeriodMicros != 100000 || m.Pids.Limit != 50 {
			t.Errorf("after update: memory %d swap %d cpu %d/%d pids %d; want 64 MiB, 0, 50000/100000, 50",
				m.Memory.Limit, m.Memory.SwapLimit, m.CPU.QuotaMicros, m.CPU.PeriodMicros, m.Pids.Limit)
		}
		if err := c2.Delete(ctx, true); err != nil {
			t.Fatal(err)
		}
	})
}
