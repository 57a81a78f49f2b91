package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"google.golang.org/protobuf/proto"
)

// TestMetricsEncoding: the hand-encoded metrics decode, with cgroups/v3's
// generated types, to what those types built from the same cgroup files
// (the reference builders below, which the shim used before). Every file
// and key holds a value of its own, so a field number or a key in the
// wrong place shows.
func TestMetricsEncoding(t *testing.T) {
	next := uint64(1000)
	val := func() string { next += 7; return strconv.FormatUint(next, 10) }
	write := func(t *testing.T, dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kv := func(keys ...string) string {
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s\n", k, val())
		}
		return b.String()
	}
	mkdir := func(t *testing.T) string { return t.TempDir() }

	t.Run("v1", func(t *testing.T) {
		pids, cpuacct, cpu, mem := mkdir(t), mkdir(t), mkdir(t), mkdir(t)
		write(t, pids, "pids.current", val())
		write(t, pids, "pids.max", val())
		write(t, cpuacct, "cpuacct.usage", val())
		write(t, cpuacct, "cpuacct.stat", kv("user", "system"))
		write(t, cpuacct, "cpuacct.usage_percpu", val()+" "+val()+" 0 "+val()+"\n")
		write(t, cpu, "cpu.stat", kv("nr_periods", "nr_throttled", "throttled_time"))
		write(t, mem, "memory.stat", kv(memoryV1Keys...))
		for _, p := range []string{"memory.", "memory.memsw.", "memory.kmem.", "memory.kmem.tcp."} {
			for _, f := range []string{"usage_in_bytes", "max_usage_in_bytes", "limit_in_bytes", "failcnt"} {
				write(t, mem, p+f, val())
			}
		}
		for _, cg := range []*cgroup{
			{v1: map[string]string{"pids": pids, "cpuacct": cpuacct, "cpu": cpu, "memory": mem}},
			{v1: map[string]string{"cpuacct": cpuacct}}, // no cpu controller: an empty Throttle
			{v1: map[string]string{"pids": pids}},
			{v1: map[string]string{"memory": mem}},
		} {
			want, err := cg.refMetricsV1()
			if err != nil {
				t.Fatal(err)
			}
			metricsMatch(t, cg, want, &v1.Metrics{})
		}
		if _, _, err := (&cgroup{v1: map[string]string{"blkio": pids}}).metrics(); err == nil {
			t.Error("metrics of a cgroup with no pids, cpuacct or memory: no error")
		}
	})

	t.Run("v2", func(t *testing.T) {
		d := mkdir(t)
		for _, f := range []string{"pids.current", "pids.max", "memory.current", "memory.max", "memory.peak", "memory.swap.current", "memory.swap.max"} {
			write(t, d, f, val())
		}
		write(t, d, "cpu.stat", kv("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"))
		write(t, d, "memory.stat", kv(memoryV2Keys...))
		write(t, d, "memory.events", kv("low", "high", "max", "oom", "oom_kill"))
		cg := &cgroup{unified: d}
		want, err := cg.refMetricsV2()
		if err != nil {
			t.Fatal(err)
		}
		metricsMatch(t, cg, want, &v2.Metrics{})
		if _, _, err := (&cgroup{unified: filepath.Join(d, "gone")}).metrics(); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("metrics of a removed v2 group: %v, want not exist", err)
		}
	})

}

// metricsMatch checks that cg's encoded metrics name want's type and
// decode (into got, an empty message of that type) to want.
func metricsMatch(t *testing.T, cg *cgroup, want, got proto.Message) {
	t.Helper()
	b, name, err := cg.metrics()
	if err != nil || name != string(proto.MessageName(want)) {
		t.Fatalf("metrics: %v, type %q; want %q", err, name, proto.MessageName(want))
	}
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("cgroup %+v: decoded %v\nwant %v", cg, got, want)
	}
}

// The reference: what the shim built with cgroups/v3's generated types
// before it encoded the messages itself.
func (c *cgroup) refMetricsV1() (*v1.Metrics, error) {
	m := &v1.Metrics{}
	if d, ok := c.v1["pids"]; ok {
		m.Pids = &v1.PidsStat{Current: readUint(filepath.Join(d, "pids.current")), Limit: readUint(filepath.Join(d, "pids.max"))}
	}
	if d, ok := c.v1["cpuacct"]; ok {
		st := readKV(filepath.Join(d, "cpuacct.stat"))
		usage := &v1.CPUUsage{Total: readUint(filepath.Join(d, "cpuacct.usage")),
			User: st["user"] * (1e9 / userHZ), Kernel: st["system"] * (1e9 / userHZ)}
		if b, err := os.ReadFile(filepath.Join(d, "cpuacct.usage_percpu")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				n, _ := strconv.ParseUint(f, 10, 64)
				usage.PerCPU = append(usage.PerCPU, n)
			}
		}
		m.CPU = &v1.CPUStat{Usage: usage, Throttling: &v1.Throttle{}}
	}
	if d, ok := c.v1["cpu"]; ok && m.CPU != nil {
		st := readKV(filepath.Join(d, "cpu.stat"))
		m.CPU.Throttling = &v1.Throttle{Periods: st["nr_periods"], ThrottledPeriods: st["nr_throttled"], ThrottledTime: st["throttled_time"]}
	}
	if d, ok := c.v1["memory"]; ok {
		m.Memory = refMemoryV1(d)
	}
	if m.Pids == nil && m.CPU == nil && m.Memory == nil {
		return nil, errors.New("no pids, cpuacct or memory controller")
	}
	return m, nil
}

func refMemoryV1(d string) *v1.MemoryStat {
	entry := func(prefix string) *v1.MemoryEntry {
		return &v1.MemoryEntry{Usage: readUint(filepath.Join(d, prefix+"usage_in_bytes")),
			Max:     readUint(filepath.Join(d, prefix+"max_usage_in_bytes")),
			Limit:   readUint(filepath.Join(d, prefix+"limit_in_bytes")),
			Failcnt: readUint(filepath.Join(d, prefix+"failcnt"))}
	}
	st := readKV(filepath.Join(d, "memory.stat"))
	return &v1.MemoryStat{Cache: st["cache"], RSS: st["rss"], RSSHuge: st["rss_huge"],
		MappedFile: st["mapped_file"], Dirty: st["dirty"], Writeback: st["writeback"],
		PgPgIn: st["pgpgin"], PgPgOut: st["pgpgout"], PgFault: st["pgfault"], PgMajFault: st["pgmajfault"],
		InactiveAnon: st["inactive_anon"], ActiveAnon: st["active_anon"], InactiveFile: st["inactive_file"],
		ActiveFile: st["active_file"], Unevictable: st["unevictable"],
		HierarchicalMemoryLimit: st["hierarchical_memory_limit"], HierarchicalSwapLimit: st["hierarchical_memsw_limit"],
		TotalCache: st["total_cache"], TotalRSS: st["total_rss"], TotalRSSHuge: st["total_rss_huge"],
		TotalMappedFile: st["total_mapped_file"], TotalDirty: st["total_dirty"], TotalWriteback: st["total_writeback"],
		TotalPgPgIn: st["total_pgpgin"], TotalPgPgOut: st["total_pgpgout"], TotalPgFault: st["total_pgfault"],
		TotalPgMajFault: st["total_pgmajfault"], TotalInactiveAnon: st["total_inactive_anon"],
		TotalActiveAnon: st["total_active_anon"], TotalInactiveFile: st["total_inactive_file"],
		TotalActiveFile: st["total_active_file"], TotalUnevictable: st["total_unevictable"],
		Usage: entry("memory."), Swap: entry("memory.memsw."), Kernel: entry("memory.kmem."),
		KernelTCP: entry("memory.kmem.tcp.")}
}

func (c *cgroup) refMetricsV2() (*v2.Metrics, error) {
	d := c.unified
	if _, err := os.Stat(d); err != nil {
		return nil, err
	}
	cpu := readKV(filepath.Join(d, "cpu.stat"))
	mem := readKV(filepath.Join(d, "memory.stat"))
	ev := readKV(filepath.Join(d, "memory.events"))
	return &v2.Metrics{
		Pids: &v2.PidsStat{Current: readUint(filepath.Join(d, "pids.current")), Limit: readUint(filepath.Join(d, "pids.max"))},
		CPU: &v2.CPUStat{UsageUsec: cpu["usage_usec"], UserUsec: cpu["user_usec"], SystemUsec: cpu["system_usec"],
			NrPeriods: cpu["nr_periods"], NrThrottled: cpu["nr_throttled"], ThrottledUsec: cpu["throttled_usec"]},
		Memory: &v2.MemoryStat{Anon: mem["anon"], File: mem["file"], KernelStack: mem["kernel_stack"],
			Slab: mem["slab"], Sock: mem["sock"], Shmem: mem["shmem"], FileMapped: mem["file_mapped"],
			FileDirty: mem["file_dirty"], FileWriteback: mem["file_writeback"], AnonThp: mem["anon_thp"],
			InactiveAnon: mem["inactive_anon"], ActiveAnon: mem["active_anon"], InactiveFile: mem["inactive_file"],
			ActiveFile: mem["active_file"], Unevictable: mem["unevictable"], SlabReclaimable: mem["slab_reclaimable"],
			SlabUnreclaimable: mem["slab_unreclaimable"], Pgfault: mem["pgfault"], Pgmajfault: mem["pgmajfault"],
			Usage: readUint(filepath.Join(d, "memory.current")), UsageLimit: readUint(filepath.Join(d, "memory.max")),
			MaxUsage: readUint(filepath.Join(d, "memory.peak")), SwapUsage: readUint(filepath.Join(d, "memory.swap.current")),
			SwapLimit: readUint(filepath.Join(d, "memory.swap.max"))},
		MemoryEvents: &v2.MemoryEvents{Low: ev["low"], High: ev["high"], Max: ev["max"], Oom: ev["oom"], OomKill: ev["oom_kill"]},
	}, nil
}
