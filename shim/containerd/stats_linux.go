package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Stats reports the task's cgroup as io.containerd.cgroups.v1.Metrics or
// io.containerd.cgroups.v2.Metrics, as `ctr task metrics` and CRI's stats
// decode them.
func (s *Service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	st := t.core.State()
	if st.Pid <= 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "task %s has no process", t.id)
	}
	cg, err := findCgroup(st.Pid)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "task %s: %v", t.id, err)
	}
	m, err := cg.metrics()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "task %s: %v", t.id, err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &taskapi.StatsResponse{Stats: &anypb.Any{TypeUrl: string(proto.MessageName(m)), Value: b}}, nil
}

// cgroup locates one process's cgroup: the unified folder on a cgroup v2
// host, one folder per controller on a v1 (or hybrid) host.
type cgroup struct {
	unified string            // v2 folder, "" on v1
	v1      map[string]string // controller -> folder
}

const cgroupRoot = "/sys/fs/cgroup"

// findCgroup reads /proc/PID/cgroup.
func findCgroup(pid int) (*cgroup, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	defer f.Close()
	var fs unix.Statfs_t
	v2host := unix.Statfs(cgroupRoot, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC
	cg := &cgroup{v1: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			if v2host {
				cg.unified = filepath.Join(cgroupRoot, parts[2])
			}
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			cg.v1[ctl] = filepath.Join(cgroupRoot, parts[1], parts[2])
		}
	}
	if cg.unified == "" && len(cg.v1) == 0 {
		return nil, errors.New("no cgroup found")
	}
	return cg, nil
}

// metrics reads the cgroup's statistics.
func (c *cgroup) metrics() (proto.Message, error) {
	if c.unified != "" {
		return c.metricsV2()
	}
	return c.metricsV1()
}

// readUint reads a file holding one number ("max" reads as 0).
func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// readKV reads a "key value" per line file.
func readKV(path string) map[string]uint64 {
	m := map[string]uint64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// userHZ is the unit of cpuacct.stat.
const userHZ = 100

func (c *cgroup) metricsV1() (*v1.Metrics, error) {
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
		m.Memory = memoryV1(d)
	}
	if m.Pids == nil && m.CPU == nil && m.Memory == nil {
		return nil, errors.New("no pids, cpuacct or memory controller")
	}
	return m, nil
}

func memoryV1(d string) *v1.MemoryStat {
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

func (c *cgroup) metricsV2() (*v2.Metrics, error) {
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
