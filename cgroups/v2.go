package cgroups

import (
	"fmt"
	"strconv"
	"strings"
)

// cpuV2 reads cpu.stat (always there) and cpu.max (with the cpu controller).
func cpuV2(dir string) (*CPU, error) {
	st, err := readKV(dir, "cpu.stat")
	if err != nil {
		return nil, err
	}
	c := &CPU{Version: 2, Stat: st,
		UsageNanos: st["usage_usec"] * 1000, UserNanos: st["user_usec"] * 1000, SystemNanos: st["system_usec"] * 1000,
		Periods: st["nr_periods"], ThrottledPeriods: st["nr_throttled"], ThrottledNanos: st["throttled_usec"] * 1000}
	s, ok, err := readOptional(dir, "cpu.max")
	if err != nil || !ok {
		return c, err
	}
	c.QuotaMicros, c.PeriodMicros, err = parseCPUMax(s)
	return c, err
}

// parseCPUMax parses "max 100000" or "50000 100000".
func parseCPUMax(s string) (quota int64, period uint64, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%w: cpu.max: %q", ErrInvalid, s)
	}
	quota = -1
	if f[0] != "max" {
		if quota, err = strconv.ParseInt(f[0], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%w: cpu.max: %q", ErrInvalid, s)
		}
	}
	if period, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: cpu.max: %q", ErrInvalid, s)
	}
	return quota, period, nil
}

// memoryV2 reads a v2 group with the memory controller enabled.
func memoryV2(dir string) (*Memory, error) {
	m := &Memory{Version: 2}
	var err error
	if m.Usage, err = readUint(dir, "memory.current"); err != nil {
		return nil, err
	}
	if m.Limit, err = readUint(dir, "memory.max"); err != nil {
		return nil, err
	}
	if m.MaxUsage, _, err = readOptionalUint(dir, "memory.peak"); err != nil {
		return nil, err
	}
	if m.Stat, err = readKV(dir, "memory.stat"); err != nil {
		return nil, err
	}
	m.Cache, m.RSS, m.InactiveFile = m.Stat["file"], m.Stat["anon"], m.Stat["inactive_file"]
	if m.Events, err = readKV(dir, "memory.events"); err != nil {
		return nil, err
	}
	m.OOMKills = m.Events["oom_kill"]
	if m.SwapUsage, _, err = readOptionalUint(dir, "memory.swap.current"); err != nil {
		return nil, err
	}
	m.SwapLimit, _, err = readOptionalUint(dir, "memory.swap.max")
	return m, err
}

// ioV2 reads io.stat.
func ioV2(dir string) (*IO, error) {
	s, err := readFile(dir, "io.stat")
	if err != nil {
		return nil, err
	}
	devs, err := parseIOStat(s)
	if err != nil {
		return nil, err
	}
	return &IO{Version: 2, Devices: devs}, nil
}

// parseIOStat parses "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" lines.
func parseIOStat(s string) ([]IODevice, error) {
	devs := map[[2]uint64]*IODevice{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		major, minor, err := parseDevice(f[0])
		if err != nil {
			return nil, fmt.Errorf("io.stat: %w", err)
		}
		d := &IODevice{Major: major, Minor: minor}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if !ok || err != nil {
				continue // keys whose values are not counters (io.stat also carries cost.* and latency figures)
			}
			switch k {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.ReadIOs = n
			case "wios":
				d.WriteIOs = n
			case "dbytes":
				d.DiscardBytes = n
			case "dios":
				d.DiscardIOs = n
			}
		}
		devs[[2]uint64{major, minor}] = d
	}
	return sortedDevices(devs), nil
}
