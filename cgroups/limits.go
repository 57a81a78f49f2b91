package cgroups

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MinMemory is the smallest memory limit ParseMemory accepts: below it
// the OCI runtime's own set-up is killed before the container starts
// (docker refuses less than 6 MiB for the same reason).
const MinMemory = 6 << 20

// DefaultCPUPeriod is the CFS period ParseCPUs uses, in microseconds (the
// kernel's default).
const DefaultCPUPeriod = 100000

// NoLimit is the value of a limit that is removed ("max" given): -1, as
// the OCI runtime spec and `runc update` spell it.
const NoLimit = -1

var units = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// ParseBytes parses a size: a number, possibly with a fraction, and an
// optional binary unit, case-insensitive: b, k, m, g, t, also written kb
// or kib ("64m", "1.5G", "512KiB", "1048576"). Fractions of a byte are
// dropped. Errors wrap ErrInvalid and say how to write it.
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], t[i:]
	}
	mult, ok := units[unit]
	if num == "" {
		return 0, fmt.Errorf("%w: size %q is not a number of bytes with an optional unit (for example 64m)", ErrInvalid, s)
	}
	if !ok {
		return 0, fmt.Errorf("%w: size %q: unknown unit %q: use b, k, m, g or t (for example 64m)", ErrInvalid, s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || f < 0 {
		return 0, fmt.Errorf("%w: size %q is not a number of bytes with an optional unit (for example 64m)", ErrInvalid, s)
	}
	if v := f * float64(mult); v < math.MaxInt64 {
		return int64(v), nil
	}
	return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
}

// ParseMemory parses a memory limit: a size for ParseBytes of at least
// MinMemory, or "max" (or -1) for no limit, which gives NoLimit.
func ParseMemory(s string) (int64, error) {
	if unlimited(s) {
		return NoLimit, nil
	}
	v, err := ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("memory limit: %w", err)
	}
	if v < MinMemory {
		return 0, fmt.Errorf("memory limit: %w: %q is below the minimum of 6m: give 6m or more, or max for no limit", ErrInvalid, s)
	}
	return v, nil
}

// CPUQuota is a CFS bandwidth limit: Quota microseconds of CPU time in
// every Period microseconds. Quota NoLimit means no limit.
type CPUQuota struct {
	Quota  int64
	Period uint64
}

// CPUs returns the limit as a number of CPUs (0.5 for 50000/100000), or
// 0 when there is none.
func (q CPUQuota) CPUs() float64 {
	if q.Quota <= 0 || q.Period == 0 {
		return 0
	}
	return float64(q.Quota) / float64(q.Period)
}

// ParseCPUs parses a number of CPUs ("0.5", "2") into a quota per
// DefaultCPUPeriod, as docker's --cpus does: at least 0.01 and at most
// the CPUs of this machine. "max" removes the limit.
func ParseCPUs(s string) (CPUQuota, error) {
	if unlimited(s) {
		return CPUQuota{Quota: NoLimit, Period: DefaultCPUPeriod}, nil
	}
	n := runtime.NumCPU()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || f < 0.01 || f > float64(n) {
		return CPUQuota{}, fmt.Errorf("%w: cpus %q: give a number of CPUs from 0.01 to %d (this machine has %d), like 0.5, or max for no limit",
			ErrInvalid, s, n, n)
	}
	return CPUQuota{Quota: int64(math.Round(f * DefaultCPUPeriod)), Period: DefaultCPUPeriod}, nil
}

// ParsePids parses a limit on the number of tasks: a positive integer,
// or "max" (or -1) for no limit, which gives NoLimit.
func ParsePids(s string) (int64, error) {
	if unlimited(s) {
		return NoLimit, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: pids limit %q: give a whole number of processes of 1 or more, or max for no limit", ErrInvalid, s)
	}
	return v, nil
}

func unlimited(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return s == "max" || s == "-1" || s == "unlimited"
}

// Update is a change of a running container's limits; a nil field is left
// as it is. Build it with the Parse functions, check it with Validate,
// and hand Resources to the OCI runtime's update.
type Update struct {
	// Memory is the memory limit in bytes, NoLimit to remove it.
	Memory *int64
	// MemorySwap is the limit of memory plus swap in bytes (as the OCI
	// spec and docker's --memory-swap), NoLimit for unlimited swap.
	MemorySwap *int64
	// CPU is the CFS bandwidth limit.
	CPU *CPUQuota
	// Pids is the limit of tasks, NoLimit to remove it.
	Pids *int64
}

// Empty reports whether u changes nothing.
func (u *Update) Empty() bool {
	return u.Memory == nil && u.MemorySwap == nil && u.CPU == nil && u.Pids == nil
}

// Validate checks the fields against each other: something to change,
// and memory plus swap not below memory. Errors wrap ErrInvalid.
func (u *Update) Validate() error {
	if u.Empty() {
		return fmt.Errorf("%w: no limit to change: give a memory, cpus or pids limit", ErrInvalid)
	}
	if u.Memory != nil && u.MemorySwap != nil && *u.MemorySwap != NoLimit &&
		(*u.Memory == NoLimit || *u.MemorySwap < *u.Memory) {
		return fmt.Errorf("%w: memory+swap limit %d is below the memory limit: give a memory-swap of at least the memory limit, or max", ErrInvalid, *u.MemorySwap)
	}
	return nil
}

// KeepSwap fills MemorySwap, when u changes Memory alone, so the group
// keeps the swap allowance it has now (cur is its memory as Stats read
// it): memory plus swap becomes the new memory plus cur.SwapLimit, or no
// limit when the memory limit is removed. Without it a cgroup v1 runtime
// refuses to raise memory above the memory+swap limit set at create
// ("invalid argument"). Nothing is filled when swap is unlimited or not
// accounted (the runtime then leaves it alone), or when u sets it.
func (u *Update) KeepSwap(cur *Memory) {
	if u.Memory == nil || u.MemorySwap != nil || cur == nil {
		return
	}
	if *u.Memory == NoLimit {
		v := int64(NoLimit)
		u.MemorySwap = &v
		return
	}
	accounted := cur.Version == 2 || cur.V1 != nil && cur.V1.MemSwap != nil
	if !accounted || cur.SwapLimit == Unlimited || cur.SwapLimit > math.MaxInt64-uint64(*u.Memory) {
		return
	}
	v := *u.Memory + int64(cur.SwapLimit)
	u.MemorySwap = &v
}

// Resources returns u as the OCI runtime spec's resources, the JSON that
// `runc update --resources` and `crun update --resources` read.
func (u *Update) Resources() *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if u.Memory != nil || u.MemorySwap != nil {
		r.Memory = &specs.LinuxMemory{Limit: u.Memory, Swap: u.MemorySwap}
	}
	if u.CPU != nil {
		q, p := u.CPU.Quota, u.CPU.Period
		r.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if u.Pids != nil {
		p := *u.Pids
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	return r
}

// String describes u in one line ("memory=67108864 cpus=0.5 pids=50").
func (u *Update) String() string {
	var parts []string
	if u.Memory != nil {
		parts = append(parts, "memory="+strconv.FormatInt(*u.Memory, 10))
	}
	if u.MemorySwap != nil {
		parts = append(parts, "memory-swap="+strconv.FormatInt(*u.MemorySwap, 10))
	}
	if u.CPU != nil {
		parts = append(parts, fmt.Sprintf("cpu-quota=%d/%d", u.CPU.Quota, u.CPU.Period))
	}
	if u.Pids != nil {
		parts = append(parts, "pids="+strconv.FormatInt(*u.Pids, 10))
	}
	return strings.Join(parts, " ")
}
