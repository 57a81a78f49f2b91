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

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
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
	b, name, err := cg.metrics()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "task %s: %v", t.id, err)
	}
	return &taskapi.StatsResponse{Stats: &anypb.Any{TypeUrl: name, Value: b}}, nil
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

// metrics reads the cgroup's statistics: the encoded message and its
// type's name.
func (c *cgroup) metrics() ([]byte, string, error) {
	if c.unified != "" {
		b, err := c.metricsV2()
		return b, metricsV2Name, err
	}
	b, err := c.metricsV1()
	return b, metricsV1Name, err
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

// The two metrics messages are encoded by hand with protowire, field
// numbers from cgroups/v3's cgroup1/stats and cgroup2/stats metrics.proto:
// linking those generated types cost every shim 29 KB of heap at start-up
// for a call an idle shim never gets (README, "Under containerd and
// Kubernetes"). TestMetricsEncoding decodes what is written here with the
// generated types and compares it with what they would have said.
const (
	metricsV1Name = "io.containerd.cgroups.v1.Metrics"
	metricsV2Name = "io.containerd.cgroups.v2.Metrics"
)

// pmsg is a protobuf message being encoded: fields appended in
// field-number order, zero scalars left out as proto3 does.
type pmsg []byte

func (m *pmsg) uint(n protowire.Number, v uint64) {
	if v != 0 {
		*m = protowire.AppendTag(*m, n, protowire.VarintType)
		*m = protowire.AppendVarint(*m, v)
	}
}

// packed appends a repeated uint64 field (packed, as proto3 encodes it).
func (m *pmsg) packed(n protowire.Number, vs []uint64) {
	if len(vs) == 0 {
		return
	}
	var b []byte
	for _, v := range vs {
		b = protowire.AppendVarint(b, v)
	}
	*m = protowire.AppendTag(*m, n, protowire.BytesType)
	*m = protowire.AppendBytes(*m, b)
}

// sub appends a message field that is present, even if empty.
func (m *pmsg) sub(n protowire.Number, s pmsg) {
	*m = protowire.AppendTag(*m, n, protowire.BytesType)
	*m = protowire.AppendBytes(*m, s)
}

// keys appends st[keys[i]] as field i+1.
func (m *pmsg) keys(st map[string]uint64, keys []string) {
	for i, k := range keys {
		m.uint(protowire.Number(i+1), st[k])
	}
}

// memoryV1Keys are memory.stat's keys in the order of v1 MemoryStat's
// fields 1 to 32.
var memoryV1Keys = []string{"cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback",
	"pgpgin", "pgpgout", "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file",
	"active_file", "unevictable", "hierarchical_memory_limit", "hierarchical_memsw_limit",
	"total_cache", "total_rss", "total_rss_huge", "total_mapped_file", "total_dirty", "total_writeback",
	"total_pgpgin", "total_pgpgout", "total_pgfault", "total_pgmajfault", "total_inactive_anon",
	"total_active_anon", "total_inactive_file", "total_active_file", "total_unevictable"}

// memoryV2Keys are memory.stat's keys in the order of v2 MemoryStat's
// fields 1 to 19.
var memoryV2Keys = []string{"anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped",
	"file_dirty", "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
	"active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault"}

// metricsV1 encodes io.containerd.cgroups.v1.Metrics: pids (2), cpu (3),
// memory (4).
func (c *cgroup) metricsV1() ([]byte, error) {
	var m pmsg
	if d, ok := c.v1["pids"]; ok {
		var p pmsg // PidsStat: current 1, limit 2
		p.uint(1, readUint(filepath.Join(d, "pids.current")))
		p.uint(2, readUint(filepath.Join(d, "pids.max")))
		m.sub(2, p)
	}
	if d, ok := c.v1["cpuacct"]; ok {
		st := readKV(filepath.Join(d, "cpuacct.stat"))
		var usage pmsg // CPUUsage: total 1, kernel 2, user 3, per_cpu 4
		usage.uint(1, readUint(filepath.Join(d, "cpuacct.usage")))
		usage.uint(2, st["system"]*(1e9/userHZ))
		usage.uint(3, st["user"]*(1e9/userHZ))
		if b, err := os.ReadFile(filepath.Join(d, "cpuacct.usage_percpu")); err == nil {
			var per []uint64
			for _, f := range strings.Fields(string(b)) {
				n, _ := strconv.ParseUint(f, 10, 64)
				per = append(per, n)
			}
			usage.packed(4, per)
		}
		var thr pmsg // Throttle: periods 1, throttled_periods 2, throttled_time 3
		if d, ok := c.v1["cpu"]; ok {
			st := readKV(filepath.Join(d, "cpu.stat"))
			thr.uint(1, st["nr_periods"])
			thr.uint(2, st["nr_throttled"])
			thr.uint(3, st["throttled_time"])
		}
		var cpu pmsg // CPUStat: usage 1, throttling 2
		cpu.sub(1, usage)
		cpu.sub(2, thr)
		m.sub(3, cpu)
	}
	if d, ok := c.v1["memory"]; ok {
		m.sub(4, memoryV1(d))
	}
	if len(m) == 0 {
		return nil, errors.New("no pids, cpuacct or memory controller")
	}
	return m, nil
}

// memoryV1 encodes a v1 MemoryStat: memory.stat as fields 1 to 32, then
// the usage (33), swap (34), kernel (35) and kernel TCP (36) entries.
func memoryV1(d string) pmsg {
	entry := func(prefix string) pmsg {
		var e pmsg // MemoryEntry: limit 1, usage 2, max 3, failcnt 4
		e.uint(1, readUint(filepath.Join(d, prefix+"limit_in_bytes")))
		e.uint(2, readUint(filepath.Join(d, prefix+"usage_in_bytes")))
		e.uint(3, readUint(filepath.Join(d, prefix+"max_usage_in_bytes")))
		e.uint(4, readUint(filepath.Join(d, prefix+"failcnt")))
		return e
	}
	var m pmsg
	m.keys(readKV(filepath.Join(d, "memory.stat")), memoryV1Keys)
	m.sub(33, entry("memory."))
	m.sub(34, entry("memory.memsw."))
	m.sub(35, entry("memory.kmem."))
	m.sub(36, entry("memory.kmem.tcp."))
	return m
}

// metricsV2 encodes io.containerd.cgroups.v2.Metrics: pids (1), cpu (2),
// memory (4), memory_events (8).
func (c *cgroup) metricsV2() ([]byte, error) {
	d := c.unified
	if _, err := os.Stat(d); err != nil {
		return nil, err
	}
	var pids pmsg // PidsStat: current 1, limit 2
	pids.uint(1, readUint(filepath.Join(d, "pids.current")))
	pids.uint(2, readUint(filepath.Join(d, "pids.max")))
	var cpu pmsg // CPUStat: usage_usec 1 ... throttled_usec 6
	cpu.keys(readKV(filepath.Join(d, "cpu.stat")),
		[]string{"usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"})
	var mem pmsg // MemoryStat: memory.stat as 1 to 19, then usage 32 ... max_usage 36
	mem.keys(readKV(filepath.Join(d, "memory.stat")), memoryV2Keys)
	mem.uint(32, readUint(filepath.Join(d, "memory.current")))
	mem.uint(33, readUint(filepath.Join(d, "memory.max")))
	mem.uint(34, readUint(filepath.Join(d, "memory.swap.current")))
	mem.uint(35, readUint(filepath.Join(d, "memory.swap.max")))
	mem.uint(36, readUint(filepath.Join(d, "memory.peak")))
	var ev pmsg // MemoryEvents: low 1, high 2, max 3, oom 4, oom_kill 5
	ev.keys(readKV(filepath.Join(d, "memory.events")), []string{"low", "high", "max", "oom", "oom_kill"})
	var m pmsg
	m.sub(1, pids)
	m.sub(2, cpu)
	m.sub(4, mem)
	m.sub(8, ev)
	return m, nil
}
