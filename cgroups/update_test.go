package cgroups_test

import (
	"context"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tether-run/tether/cgroups"
)

// TestRealUpdate changes the limits of a running container through the
// runtime's update and reads them back from its cgroup.
func TestRealUpdate(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		pids := int64(20)
		c := create(t, rt, &specs.LinuxResources{Memory: memLimit(16 << 20), Pids: &specs.LinuxPids{Limit: &pids}}, "sleep", "1000")
		c.start(t)
		mem, err := cgroups.ParseMemory("64m")
		if err != nil {
			t.Fatal(err)
		}
		cpu, err := cgroups.ParseCPUs("0.5")
		if err != nil {
			t.Fatal(err)
		}
		pl, err := cgroups.ParsePids("50")
		if err != nil {
			t.Fatal(err)
		}
		u := &cgroups.Update{Memory: &mem, CPU: &cpu, Pids: &pl}
		u.KeepSwap(stats(t, c).Memory) // no swap before (memory+swap == memory), none after
		if err := u.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := c.rt.Update(context.Background(), c.id, u.Resources()); err != nil {
			t.Fatalf("update %s: %v", u, err)
		}
		s := stats(t, c)
		if s.Memory.Limit != 64<<20 || s.CPU.QuotaMicros != 50000 || s.CPU.PeriodMicros != 100000 || s.Pids.Limit != 50 {
			t.Errorf("after update %s: memory limit %d, cpu %d/%d, pids limit %d", u, s.Memory.Limit, s.CPU.QuotaMicros, s.CPU.PeriodMicros, s.Pids.Limit)
		}
		if s.Memory.SwapLimit != 0 {
			t.Errorf("swap limit %d after update, want 0 as before", s.Memory.SwapLimit)
		}
		t.Logf("after update: memory limit %d swap limit %d, cpu %d/%d, pids %d", s.Memory.Limit, s.Memory.SwapLimit, s.CPU.QuotaMicros, s.CPU.PeriodMicros, s.Pids.Limit)
	})
}
