package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/runtime"
)

func TestNewStatsRow(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	sample := func(at time.Duration, cpuNs, usage, inactive, limit, pids, pidsLimit uint64) *runtime.Metrics {
		return &runtime.Metrics{Time: t0.Add(at),
			CPU:    &cgroups.CPU{Version: 2, UsageNanos: cpuNs},
			Memory: &cgroups.Memory{Version: 2, Usage: usage, InactiveFile: inactive, Limit: limit, OOMKills: 1},
			Pids:   &cgroups.Pids{Version: 2, Current: pids, Limit: pidsLimit},
			IO: &cgroups.IO{Version: 2, Devices: []cgroups.IODevice{
				{Major: 8, ReadBytes: 100, WriteBytes: 1000}, {Major: 253, ReadBytes: 1, WriteBytes: 10}}}}
	}
	const host = 8 << 30
	prev := sample(0, 1e9, 0, 0, 0, 0, 0)
	for _, tc := range []struct {
		name       string
		cur        *runtime.Metrics
		cpu        float64
		usage      uint64
		limit      uint64
		unlimited  bool
		pidsLimit  any
		memPercent float64
	}{
		{"half a CPU, limits", sample(time.Second, 1.5e9, 10<<20, 2<<20, 64<<20, 3, 50), 50, 8 << 20, 64 << 20, false, uint64(50), 12.5},
		{"two CPUs over two seconds, no limits", sample(2*time.Second, 5e9, 1<<30, 0, cgroups.Unlimited, 3, cgroups.Unlimited), 200, 1 << 30, host, true, nil, 12.5},
		{"limit above the host's memory", sample(time.Second, 1e9, 1<<30, 0, 1<<40, 1, 5), 0, 1 << 30, host, true, uint64(5), 12.5},
		{"inactive cache above usage", sample(time.Second, 1e9, 1, 5, 64<<20, 1, 5), 0, 0, 64 << 20, false, uint64(5), 0},
		{"counter went back (new group)", sample(time.Second, 0, 1, 0, 64<<20, 1, 5), 0, 1, 64 << 20, false, uint64(5), 100.0 / (64 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStatsRow("c1", prev, tc.cur, host)
			var pl any
			if r.Pids.Limit != nil {
				pl = *r.Pids.Limit
			}
			if r.ID != "c1" || r.CPUPercent != tc.cpu || r.Memory.Usage != tc.usage || r.Memory.Limit != tc.limit ||
				r.Memory.Unlimited != tc.unlimited || pl != tc.pidsLimit || r.Memory.Percent != tc.memPercent ||
				r.Memory.OOMKills != 1 || r.BlockIO.ReadBytes != 101 || r.BlockIO.WriteBytes != 1010 || r.Cgroup != 2 {
				t.Errorf("row %+v (pids limit %v)", r, pl)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB",
		64 << 20: "64MiB", 25276157952: "23.54GiB", 1<<60 + 1: "1EiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCPUTime(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "00:00:00", 3800 * time.Millisecond: "00:00:03",
		time.Hour + 2*time.Minute + 3*time.Second: "01:02:03", 50 * time.Hour: "2-02:00:00"} {
		if got := cpuTime(d); got != want {
			t.Errorf("cpuTime(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseUpdate(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		memory, swap, cpus, pids  string
		errHas                    string
		wantMem, wantSwap, wantPs *int64
		wantQuota                 int64
	}{
		{name: "all three", memory: "64m", cpus: "0.5", pids: "50", wantMem: ptr(64 << 20), wantPs: ptr(50), wantQuota: 50000},
		{name: "memory and swap", memory: "1g", swap: "2g", wantMem: ptr(1 << 30), wantSwap: ptr(2 << 30)},
		{name: "max", memory: "max", pids: "max", wantMem: ptr(cgroups.NoLimit), wantPs: ptr(cgroups.NoLimit)},
		{name: "nothing", errHas: "nothing to change"},
		{name: "bad unit", memory: "64q", errHas: "--memory: "},
		{name: "too small", memory: "1k", errHas: "--memory: "},
		{name: "bad cpus", cpus: "zero", errHas: "--cpus: "},
		{name: "no cpus", cpus: "0", errHas: "--cpus: "},
		{name: "bad pids", pids: "0", errHas: "--pids-limit: "},
		{name: "swap below memory", memory: "64m", swap: "32m", errHas: "--memory-swap: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseUpdate(tc.memory, tc.swap, tc.cpus, tc.pids)
			if tc.errHas != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.errHas) || strings.Contains(err.Error(), "invalid value") {
					t.Fatalf("got %v, want a usage error with %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !eq(r.Memory, tc.wantMem) || !eq(r.MemorySwap, tc.wantSwap) || !eq(r.Pids, tc.wantPs) ||
				(tc.wantQuota != 0) != (r.CPU != nil) || (r.CPU != nil && r.CPU.Quota != tc.wantQuota) {
				t.Errorf("got %+v", r)
			}
		})
	}
}

func ptr(v int64) *int64 { return &v }

func eq(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// TestStatsTemplate: --format takes a Go template, one line per row, as
// docker stats does; "" and a bad template are usage errors.
func TestStatsTemplate(t *testing.T) {
	out, err := statsFormat("{{.ID}} {{.CPUPercent}} {{.Memory.Usage}} {{.Pids.Current}}")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rows := []statsRow{{ID: "c1", CPUPercent: 12.5, Memory: statsMemory{Usage: 4096}, Pids: statsPids{Current: 3}}}
	if err := printStats(&b, out, rows, false); err != nil || b.String() != "c1 12.5 4096 3\n" {
		t.Errorf("template: %q, %v", b.String(), err)
	}
	for _, bad := range []string{"", "{{.ID"} {
		if _, err := statsFormat(bad); err == nil {
			t.Errorf("--format %q accepted", bad)
		}
	}
	if out, err := statsFormat("table"); err != nil || out.format != "table" {
		t.Errorf("table: %+v, %v", out, err)
	}
}
