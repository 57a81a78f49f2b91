package cgroups

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Unlimited is the value of a limit that is not set ("max" in cgroup v2,
// the page-counter maximum 9223372036854771712 in cgroup v1).
const Unlimited = math.MaxUint64

// Stats is a snapshot of a cgroup's usage and limits. A section is nil
// when its controller is in no hierarchy the process's cgroup can be
// found in (on a hybrid host each controller is read from the hierarchy
// it is bound to: v1, or v2 when no v1 hierarchy has it).
//
// Every section says which cgroup version it came from; fields one
// version does not have are zero, and the raw key/value files
// (memory.stat, cpu.stat, memory.events or memory.oom_control) are kept
// under the kernel's own key names, so they can be turned into
// containerd's io.containerd.cgroups.v1.Metrics or v2.Metrics without
// another read.
type Stats struct {
	// Time is when the files were read.
	Time   time.Time `json:"read"`
	CPU    *CPU      `json:"cpu,omitempty"`
	Memory *Memory   `json:"memory,omitempty"`
	Pids   *Pids     `json:"pids,omitempty"`
	IO     *IO       `json:"io,omitempty"`
}

// CPU is CPU time and CFS bandwidth throttling.
type CPU struct {
	// Version is 1 (cpuacct and cpu hierarchies) or 2 (cpu.stat).
	Version int `json:"version"`
	// UsageNanos is the CPU time used by all tasks, in nanoseconds
	// (v1 cpuacct.usage; v2 cpu.stat usage_usec * 1000).
	UsageNanos uint64 `json:"usage_ns"`
	// UserNanos and SystemNanos split it into user and kernel time (v1
	// cpuacct.usage_user/usage_sys, or cpuacct.stat in USER_HZ ticks on
	// kernels without them; v2 user_usec/system_usec).
	UserNanos   uint64 `json:"user_ns"`
	SystemNanos uint64 `json:"system_ns"`
	// PerCPUNanos is the usage per CPU (v1 cpuacct.usage_percpu); nil on v2.
	PerCPUNanos []uint64 `json:"per_cpu_ns,omitempty"`
	// Periods is the number of CFS enforcement periods that elapsed,
	// ThrottledPeriods how many of them throttled the group, and
	// ThrottledNanos the total time it was throttled for (v1 cpu.stat
	// nr_periods, nr_throttled, throttled_time; v2 nr_periods,
	// nr_throttled, throttled_usec * 1000). Zero when the cpu controller
	// is not there (v2 without it enabled for the group).
	Periods          uint64 `json:"periods"`
	ThrottledPeriods uint64 `json:"throttled_periods"`
	ThrottledNanos   uint64 `json:"throttled_ns"`
	// QuotaMicros is the CFS quota per period in microseconds, -1 when
	// there is none; PeriodMicros the period (v1 cpu.cfs_quota_us and
	// cpu.cfs_period_us; v2 cpu.max). Both 0 when unknown.
	QuotaMicros  int64  `json:"quota_us"`
	PeriodMicros uint64 `json:"period_us"`
	// Stat is the raw cpu.stat file (nil when it was not there).
	Stat map[string]uint64 `json:"stat,omitempty"`
}

// Memory is memory and swap usage, limits and OOM counters, in bytes.
type Memory struct {
	// Version is 1 or 2.
	Version int `json:"version"`
	// Usage is the memory charged to the group, page cache included (v1
	// memory.usage_in_bytes; v2 memory.current).
	Usage uint64 `json:"usage"`
	// MaxUsage is the peak of Usage (v1 memory.max_usage_in_bytes; v2
	// memory.peak, Linux 5.19 and later); 0 when the kernel keeps none.
	MaxUsage uint64 `json:"max_usage"`
	// Limit is the hard limit, Unlimited when none (v1
	// memory.limit_in_bytes; v2 memory.max).
	Limit uint64 `json:"limit"`
	// Failcnt is how often Usage hit Limit (v1 memory.failcnt); v2 keeps
	// the equivalent in Events["max"].
	Failcnt uint64 `json:"failcnt,omitempty"`
	// Cache is page cache (v1 memory.stat total_cache; v2 file) and RSS
	// anonymous memory (v1 total_rss; v2 anon); InactiveFile is the
	// inactive page cache (v1 total_inactive_file; v2 inactive_file).
	Cache        uint64 `json:"cache"`
	RSS          uint64 `json:"rss"`
	InactiveFile uint64 `json:"inactive_file"`
	// SwapUsage is the swap in use by the group alone and SwapLimit its
	// limit (v2 memory.swap.current and memory.swap.max; v1 the
	// difference of memory.memsw.* and memory.*, Unlimited when either
	// is). Both 0 when the kernel does no swap accounting.
	SwapUsage uint64 `json:"swap_usage"`
	SwapLimit uint64 `json:"swap_limit"`
	// OOMKills is how many processes the kernel's OOM killer killed in
	// the group (v2 memory.events oom_kill, which counts descendant
	// groups too; v1 memory.oom_control oom_kill, Linux 4.13 and later).
	OOMKills uint64 `json:"oom_kills"`
	// Stat is the raw memory.stat file: v1 keys ("cache", "rss",
	// "total_cache", "hierarchical_memory_limit", ...) or v2 keys
	// ("anon", "file", "kernel_stack", "pgfault", ...).
	Stat map[string]uint64 `json:"stat,omitempty"`
	// Events is the raw v2 memory.events file ("low", "high", "max",
	// "oom", "oom_kill", "oom_group_kill") or the v1 memory.oom_control
	// file ("oom_kill_disable", "under_oom", "oom_kill").
	Events map[string]uint64 `json:"events,omitempty"`
	// V1 holds the cgroup v1 page counters containerd's v1 metrics carry;
	// nil on v2.
	V1 *MemoryV1 `json:"v1,omitempty"`
}

// MemoryV1 is the cgroup v1 page counters: memory+swap, kernel and kernel
// TCP memory. A counter the kernel does not offer (memsw without swap
// accounting, kmem on recent kernels) is nil.
type MemoryV1 struct {
	MemSwap   *Counter `json:"memsw,omitempty"`
	Kernel    *Counter `json:"kmem,omitempty"`
	KernelTCP *Counter `json:"kmem_tcp,omitempty"`
}

// Counter is one v1 page counter: <prefix>.usage_in_bytes,
// .max_usage_in_bytes, .limit_in_bytes (Unlimited when none) and .failcnt.
type Counter struct {
	Usage   uint64 `json:"usage"`
	Max     uint64 `json:"max_usage"`
	Limit   uint64 `json:"limit"`
	Failcnt uint64 `json:"failcnt"`
}

// WorkingSet is the memory that cannot be dropped under pressure: Usage
// less the inactive page cache, as docker stats and the kubelet report it.
func (m *Memory) WorkingSet() uint64 {
	if m.InactiveFile > m.Usage {
		return 0
	}
	return m.Usage - m.InactiveFile
}

// Pids is the number of tasks and its limit.
type Pids struct {
	// Version is 1 or 2.
	Version int `json:"version"`
	// Current is the number of tasks (processes and threads) in the group
	// (pids.current).
	Current uint64 `json:"current"`
	// Limit is pids.max, Unlimited when "max".
	Limit uint64 `json:"limit"`
}

// IO is block IO per device.
type IO struct {
	// Version is 1 (blkio throttle files) or 2 (io.stat).
	Version int `json:"version"`
	// Devices holds one entry per device the group did IO on, sorted by
	// major and minor number.
	Devices []IODevice `json:"devices,omitempty"`
	// V1 keeps the raw v1 blkio.throttle.io_service_bytes and
	// io_serviced entries (with their Read, Write, Sync, Async, Discard
	// and Total rows) for containerd's v1 metrics; nil on v2.
	V1 *BlkioV1 `json:"v1,omitempty"`
}

// IODevice is the IO of a group on one device (v1: the Read and Write
// rows of blkio.throttle.io_service_bytes and io_serviced; v2: io.stat
// rbytes, wbytes, rios, wios, dbytes, dios).
type IODevice struct {
	Major        uint64 `json:"major"`
	Minor        uint64 `json:"minor"`
	ReadBytes    uint64 `json:"read_bytes"`
	WriteBytes   uint64 `json:"write_bytes"`
	ReadIOs      uint64 `json:"read_ios"`
	WriteIOs     uint64 `json:"write_ios"`
	DiscardBytes uint64 `json:"discard_bytes,omitempty"`
	DiscardIOs   uint64 `json:"discard_ios,omitempty"`
}

// BlkioV1 is the raw rows of the v1 blkio throttle files.
type BlkioV1 struct {
	ServiceBytes []BlkioEntry `json:"io_service_bytes,omitempty"`
	Serviced     []BlkioEntry `json:"io_serviced,omitempty"`
}

// BlkioEntry is one "MAJ:MIN Op Value" row.
type BlkioEntry struct {
	Major uint64 `json:"major"`
	Minor uint64 `json:"minor"`
	Op    string `json:"op"`
	Value uint64 `json:"value"`
}

// Stats reads c's usage and limits. Controllers found in no hierarchy
// leave their section nil; a folder that is gone (the cgroup was removed)
// fails with an error wrapping ErrNotFound.
func (c *Cgroup) Stats() (*Stats, error) {
	s := &Stats{Time: time.Now()}
	var err error
	if s.CPU, err = c.cpu(); err != nil {
		return nil, err
	}
	if s.Memory, err = c.memory(); err != nil {
		return nil, err
	}
	if s.Pids, err = c.pids(); err != nil {
		return nil, err
	}
	if s.IO, err = c.io(); err != nil {
		return nil, err
	}
	return s, nil
}

// v2Has reports whether controller ctl is enabled for the v2 group (its
// name in the group's cgroup.controllers); false when there is no v2 group.
func (c *Cgroup) v2Has(ctl string) (bool, error) {
	if c.Unified == "" {
		return false, nil
	}
	b, err := os.ReadFile(filepath.Join(c.Unified, "cgroup.controllers"))
	if err != nil {
		return false, gone(c.Unified, err)
	}
	for _, f := range splitFields(string(b)) {
		if f == ctl {
			return true, nil
		}
	}
	return false, nil
}

// gone turns a read error on a group's folder into one wrapping
// ErrNotFound when the group is not there any more.
func gone(dir string, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errENODEV) {
		if _, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("cgroup %s: %w: it was removed", dir, ErrNotFound)
		}
	}
	return fmt.Errorf("cgroup %s: %w", dir, err)
}

func (c *Cgroup) cpu() (*CPU, error) {
	if dir, ok := c.V1["cpuacct"]; ok {
		return cpuV1(dir, c.V1["cpu"])
	}
	if c.Unified == "" {
		return nil, nil
	}
	return cpuV2(c.Unified)
}

func (c *Cgroup) memory() (*Memory, error) {
	if dir, ok := c.V1["memory"]; ok {
		return memoryV1(dir)
	}
	if ok, err := c.v2Has("memory"); !ok || err != nil {
		return nil, err
	}
	return memoryV2(c.Unified)
}

func (c *Cgroup) pids() (*Pids, error) {
	dir, ok := c.V1["pids"]
	version := 1
	if !ok {
		if has, err := c.v2Has("pids"); !has || err != nil {
			return nil, err
		}
		dir, version = c.Unified, 2
	}
	cur, err := readUint(dir, "pids.current")
	if err != nil {
		return nil, err
	}
	lim, err := readUint(dir, "pids.max")
	if err != nil {
		return nil, err
	}
	return &Pids{Version: version, Current: cur, Limit: lim}, nil
}

func (c *Cgroup) io() (*IO, error) {
	if dir, ok := c.V1["blkio"]; ok {
		return ioV1(dir)
	}
	if ok, err := c.v2Has("io"); !ok || err != nil {
		return nil, err
	}
	return ioV2(c.Unified)
}
