package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// tree writes files (name -> content) into a new folder and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Files as a 6.x kernel prints them for a v1 group with a 16 MiB limit,
// no kmem.tcp and cpu and cpuacct on separate hierarchies.
func v1Tree(t *testing.T) *Cgroup {
	mem := tree(t, map[string]string{
		"memory.usage_in_bytes":       "1048576\n",
		"memory.max_usage_in_bytes":   "2097152\n",
		"memory.limit_in_bytes":       "16777216\n",
		"memory.failcnt":              "3\n",
		"memory.stat":                 "cache 4096\nrss 8192\ninactive_file 1024\ntotal_cache 40960\ntotal_rss 81920\ntotal_inactive_file 10240\nhierarchical_memory_limit 16777216\n",
		"memory.oom_control":          "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"memory.memsw.usage_in_bytes": "1052672\n", "memory.memsw.max_usage_in_bytes": "2101248\n",
		"memory.memsw.limit_in_bytes": "9223372036854771712\n", "memory.memsw.failcnt": "0\n",
		"memory.kmem.usage_in_bytes": "512\n", "memory.kmem.max_usage_in_bytes": "1024\n",
		"memory.kmem.limit_in_bytes": "9223372036854771712\n", "memory.kmem.failcnt": "0\n",
	})
	acct := tree(t, map[string]string{
		"cpuacct.usage": "3000000000\n", "cpuacct.usage_user": "2000000000\n", "cpuacct.usage_sys": "1000000000\n",
		"cpuacct.usage_percpu": "1000000000 2000000000 \n",
	})
	cpu := tree(t, map[string]string{
		"cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 5000000\n", "cpu.cfs_quota_us": "20000\n", "cpu.cfs_period_us": "100000\n",
	})
	pids := tree(t, map[string]string{"pids.current": "4\n", "pids.max": "max\n"})
	blkio := tree(t, map[string]string{
		"blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
		"blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n8:0 Sync 3\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 3\nTotal 3\n",
	})
	return &Cgroup{V1: map[string]string{"memory": mem, "cpuacct": acct, "cpu": cpu, "pids": pids, "blkio": blkio}}
}

func TestStatsV1Files(t *testing.T) {
	s, err := v1Tree(t).Stats()
	if err != nil {
		t.Fatal(err)
	}
	wantCPU := CPU{Version: 1, UsageNanos: 3e9, UserNanos: 2e9, SystemNanos: 1e9, PerCPUNanos: []uint64{1e9, 2e9},
		Periods: 10, ThrottledPeriods: 4, ThrottledNanos: 5e6, QuotaMicros: 20000, PeriodMicros: 100000,
		Stat: map[string]uint64{"nr_periods": 10, "nr_throttled": 4, "throttled_time": 5e6}}
	if !reflect.DeepEqual(*s.CPU, wantCPU) {
		t.Errorf("cpu %+v\nwant %+v", *s.CPU, wantCPU)
	}
	m := s.Memory
	if m.Version != 1 || m.Usage != 1<<20 || m.MaxUsage != 2<<20 || m.Limit != 16<<20 || m.Failcnt != 3 ||
		m.Cache != 40960 || m.RSS != 81920 || m.InactiveFile != 10240 || m.OOMKills != 1 {
		t.Errorf("memory %+v", *m)
	}
	if m.SwapUsage != 4096 || m.SwapLimit != Unlimited {
		t.Errorf("swap usage %d limit %d, want 4096 and Unlimited", m.SwapUsage, m.SwapLimit)
	}
	if m.V1.MemSwap.Limit != Unlimited || m.V1.Kernel.Usage != 512 || m.V1.KernelTCP != nil {
		t.Errorf("v1 counters %+v %+v %+v", m.V1.MemSwap, m.V1.Kernel, m.V1.KernelTCP)
	}
	if m.Stat["hierarchical_memory_limit"] != 16<<20 || m.Events["under_oom"] != 0 || len(m.Events) != 3 {
		t.Errorf("raw memory.stat %v oom_control %v", m.Stat, m.Events)
	}
	if m.WorkingSet() != 1<<20-10240 {
		t.Errorf("working set %d", m.WorkingSet())
	}
	if *s.Pids != (Pids{Version: 1, Current: 4, Limit: Unlimited}) {
		t.Errorf("pids %+v", *s.Pids)
	}
	wantDev := []IODevice{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, ReadIOs: 1, WriteIOs: 2}}
	if !reflect.DeepEqual(s.IO.Devices, wantDev) || len(s.IO.V1.ServiceBytes) != 6 || s.IO.V1.Serviced[5].Op != "Total" {
		t.Errorf("io %+v %+v", s.IO.Devices, s.IO.V1)
	}
	if n, err := v1Tree(t).OOMKills(); n != 1 || err != nil {
		t.Errorf("OOMKills %d %v, want 1", n, err)
	}
}

func TestStatsV1OldKernel(t *testing.T) {
	c := v1Tree(t)
	// before 4.7 (no usage_user: cpuacct.stat in USER_HZ), before 4.13 (no oom_kill)
	acct := tree(t, map[string]string{"cpuacct.usage": "5\n", "cpuacct.stat": "user 150\nsystem 50\n"})
	c.V1["cpuacct"] = acct
	os.WriteFile(filepath.Join(c.V1["memory"], "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\n"), 0o644)
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.UserNanos != 1.5e9 || s.CPU.SystemNanos != 0.5e9 || s.CPU.PerCPUNanos != nil {
		t.Errorf("cpu %+v", *s.CPU)
	}
	if _, err := c.OOMKills(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("OOMKills on a kernel without the counter: %v, want ErrNotSupported", err)
	}
}

func TestStatsV2Files(t *testing.T) {
	dir := tree(t, map[string]string{
		"cgroup.controllers": "cpu io memory pids\n",
		"cpu.stat":           "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 7\nnr_throttled 2\nthrottled_usec 40\n",
		"cpu.max":            "50000 100000\n",
		"memory.current":     "1048576\n", "memory.max": "16777216\n", "memory.peak": "2097152\n",
		"memory.stat":         "anon 8192\nfile 4096\ninactive_file 1024\npgfault 7\n",
		"memory.events":       "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
		"memory.swap.current": "0\n", "memory.swap.max": "max\n",
		"pids.current": "3\n", "pids.max": "8\n",
		"io.stat": "8:16 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0 cost.vrate=100.00\n",
	})
	s, err := (&Cgroup{Unified: dir}).Stats()
	if err != nil {
		t.Fatal(err)
	}
	c := s.CPU
	if c.Version != 2 || c.UsageNanos != 3e6 || c.UserNanos != 2e6 || c.SystemNanos != 1e6 || c.Periods != 7 ||
		c.ThrottledPeriods != 2 || c.ThrottledNanos != 40000 || c.QuotaMicros != 50000 || c.PeriodMicros != 100000 {
		t.Errorf("cpu %+v", *c)
	}
	m := s.Memory
	if m.Version != 2 || m.Usage != 1<<20 || m.Limit != 16<<20 || m.MaxUsage != 2<<20 || m.RSS != 8192 || m.Cache != 4096 ||
		m.OOMKills != 1 || m.Events["max"] != 5 || m.SwapLimit != Unlimited || m.V1 != nil || m.Stat["pgfault"] != 7 {
		t.Errorf("memory %+v", *m)
	}
	if *s.Pids != (Pids{Version: 2, Current: 3, Limit: 8}) {
		t.Errorf("pids %+v", *s.Pids)
	}
	want := []IODevice{{Major: 8, Minor: 0, ReadBytes: 1, ReadIOs: 1}, {Major: 8, Minor: 16, ReadBytes: 100, WriteBytes: 200, ReadIOs: 1, WriteIOs: 2}}
	if !reflect.DeepEqual(s.IO.Devices, want) {
		t.Errorf("io %+v", s.IO.Devices)
	}
}

func TestStatsV2WithoutControllers(t *testing.T) {
	// a v2 group whose parent enabled no controller: only the core cpu.stat
	dir := tree(t, map[string]string{"cgroup.controllers": "\n", "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n"})
	s, err := (&Cgroup{Unified: dir}).Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU == nil || s.CPU.UsageNanos != 10000 || s.Memory != nil || s.Pids != nil || s.IO != nil {
		t.Errorf("stats %+v", s)
	}
	if _, err := (&Cgroup{Unified: dir}).OOMKills(); !errors.Is(err, ErrNotFound) {
		t.Errorf("OOMKills without memory controller: %v, want ErrNotFound", err)
	}
}

func TestStatsRemovedGroup(t *testing.T) {
	c := v1Tree(t)
	os.RemoveAll(c.V1["memory"])
	if _, err := c.Stats(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stats of a removed group: %v, want ErrNotFound", err)
	}
}

func TestStatsMalformed(t *testing.T) {
	c := v1Tree(t)
	os.WriteFile(filepath.Join(c.V1["pids"], "pids.current"), []byte("many\n"), 0o644)
	if _, err := c.Stats(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("stats with a bad pids.current: %v, want ErrInvalid", err)
	}
}
