package cgroups

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// userHZ is the unit of cpuacct.stat: USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// cpuV1 reads the cpuacct hierarchy folder acct and the cpu hierarchy
// folder cpuDir ("" when the cpu controller is not mounted).
func cpuV1(acct, cpuDir string) (*CPU, error) {
	c := &CPU{Version: 1}
	var err error
	if c.UsageNanos, err = readUint(acct, "cpuacct.usage"); err != nil {
		return nil, err
	}
	if err := cpuV1Split(acct, c); err != nil {
		return nil, err
	}
	if s, ok, err := readOptional(acct, "cpuacct.usage_percpu"); err != nil {
		return nil, err
	} else if ok {
		for _, f := range strings.Fields(s) {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: cpuacct.usage_percpu: %q", ErrInvalid, f)
			}
			c.PerCPUNanos = append(c.PerCPUNanos, v)
		}
	}
	if cpuDir == "" {
		return c, nil
	}
	return c, cpuV1Bandwidth(cpuDir, c)
}

// cpuV1Split fills the user/system split, in nanoseconds where the kernel
// has cpuacct.usage_user (Linux 4.7), from cpuacct.stat ticks otherwise.
func cpuV1Split(acct string, c *CPU) error {
	user, ok, err := readOptionalUint(acct, "cpuacct.usage_user")
	if err != nil {
		return err
	}
	if ok {
		c.UserNanos = user
		c.SystemNanos, err = readUint(acct, "cpuacct.usage_sys")
		return err
	}
	st, err := readKV(acct, "cpuacct.stat")
	if err != nil {
		return err
	}
	c.UserNanos = st["user"] * (1e9 / userHZ)
	c.SystemNanos = st["system"] * (1e9 / userHZ)
	return nil
}

// cpuV1Bandwidth reads CFS throttling and quota from the cpu hierarchy.
func cpuV1Bandwidth(dir string, c *CPU) error {
	st, err := readKV(dir, "cpu.stat")
	if err != nil {
		return err
	}
	c.Stat = st
	c.Periods, c.ThrottledPeriods, c.ThrottledNanos = st["nr_periods"], st["nr_throttled"], st["throttled_time"]
	q, ok, err := readOptional(dir, "cpu.cfs_quota_us")
	if err != nil || !ok {
		return err
	}
	if c.QuotaMicros, err = strconv.ParseInt(strings.TrimSpace(q), 10, 64); err != nil {
		return fmt.Errorf("%w: cpu.cfs_quota_us: %q", ErrInvalid, q)
	}
	c.PeriodMicros, err = readUint(dir, "cpu.cfs_period_us")
	return err
}

// memoryV1 reads a v1 memory hierarchy folder.
func memoryV1(dir string) (*Memory, error) {
	m := &Memory{Version: 1, V1: &MemoryV1{}}
	main, err := counterV1(dir, "memory.")
	if err != nil {
		return nil, err
	}
	m.Usage, m.MaxUsage, m.Limit, m.Failcnt = main.Usage, main.Max, main.Limit, main.Failcnt
	if m.Stat, err = readKV(dir, "memory.stat"); err != nil {
		return nil, err
	}
	m.Cache = firstOf(m.Stat, "total_cache", "cache")
	m.RSS = firstOf(m.Stat, "total_rss", "rss")
	m.InactiveFile = firstOf(m.Stat, "total_inactive_file", "inactive_file")
	if m.Events, err = readKV(dir, "memory.oom_control"); err != nil {
		return nil, err
	}
	m.OOMKills = m.Events["oom_kill"]
	for _, oc := range []struct {
		prefix string
		to     **Counter
	}{{"memory.memsw.", &m.V1.MemSwap}, {"memory.kmem.", &m.V1.Kernel}, {"memory.kmem.tcp.", &m.V1.KernelTCP}} {
		if *oc.to, err = optionalCounterV1(dir, oc.prefix); err != nil {
			return nil, err
		}
	}
	if sw := m.V1.MemSwap; sw != nil {
		m.SwapUsage = sub(sw.Usage, m.Usage)
		m.SwapLimit = Unlimited
		if sw.Limit != Unlimited && m.Limit != Unlimited {
			m.SwapLimit = sub(sw.Limit, m.Limit)
		}
	}
	return m, nil
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func firstOf(m map[string]uint64, keys ...string) uint64 {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return 0
}

// counterV1 reads the four files of a v1 page counter.
func counterV1(dir, prefix string) (*Counter, error) {
	var c Counter
	for _, f := range []struct {
		name string
		to   *uint64
	}{{"usage_in_bytes", &c.Usage}, {"max_usage_in_bytes", &c.Max}, {"limit_in_bytes", &c.Limit}, {"failcnt", &c.Failcnt}} {
		v, err := readUint(dir, prefix+f.name)
		if err != nil {
			return nil, err
		}
		*f.to = v
	}
	return &c, nil
}

// optionalCounterV1 is counterV1 for a counter the kernel may lack (nil).
func optionalCounterV1(dir, prefix string) (*Counter, error) {
	if _, ok, err := readOptional(dir, prefix+"usage_in_bytes"); !ok || err != nil {
		return nil, err
	}
	return counterV1(dir, prefix)
}

// ioV1 reads the blkio throttle files, the recursive ones where the
// kernel has them (they also count child groups).
func ioV1(dir string) (*IO, error) {
	raw := &BlkioV1{}
	var err error
	if raw.ServiceBytes, err = blkioFile(dir, "blkio.throttle.io_service_bytes"); err != nil {
		return nil, err
	}
	if raw.Serviced, err = blkioFile(dir, "blkio.throttle.io_serviced"); err != nil {
		return nil, err
	}
	devs := map[[2]uint64]*IODevice{}
	dev := func(e BlkioEntry) *IODevice {
		k := [2]uint64{e.Major, e.Minor}
		if devs[k] == nil {
			devs[k] = &IODevice{Major: e.Major, Minor: e.Minor}
		}
		return devs[k]
	}
	for _, e := range raw.ServiceBytes {
		d := dev(e)
		switch e.Op {
		case "Read":
			d.ReadBytes = e.Value
		case "Write":
			d.WriteBytes = e.Value
		case "Discard":
			d.DiscardBytes = e.Value
		}
	}
	for _, e := range raw.Serviced {
		d := dev(e)
		switch e.Op {
		case "Read":
			d.ReadIOs = e.Value
		case "Write":
			d.WriteIOs = e.Value
		case "Discard":
			d.DiscardIOs = e.Value
		}
	}
	return &IO{Version: 1, Devices: sortedDevices(devs), V1: raw}, nil
}

// blkioFile reads name_recursive, or name on kernels without it.
func blkioFile(dir, name string) ([]BlkioEntry, error) {
	s, ok, err := readOptional(dir, name+"_recursive")
	if err == nil && !ok {
		s, err = readFile(dir, name)
	}
	if err != nil {
		return nil, err
	}
	return parseBlkio(name, s)
}

// parseBlkio parses "MAJ:MIN Op Value" rows; the closing "Total N" row
// (a sum over devices) is left out.
func parseBlkio(name, s string) ([]BlkioEntry, error) {
	var out []BlkioEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		major, minor, err := parseDevice(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: line %q", ErrInvalid, name, line)
		}
		out = append(out, BlkioEntry{Major: major, Minor: minor, Op: f[1], Value: v})
	}
	return out, nil
}

func sortedDevices(devs map[[2]uint64]*IODevice) []IODevice {
	out := make([]IODevice, 0, len(devs))
	for _, d := range devs {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Major != out[j].Major {
			return out[i].Major < out[j].Major
		}
		return out[i].Minor < out[j].Minor
	})
	return out
}
