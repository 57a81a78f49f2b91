package cgroups

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // part of the error, "" for none
	}{
		{"64m", 64 << 20, ""}, {"64M", 64 << 20, ""}, {"64MiB", 64 << 20, ""}, {"1.5g", 3 << 29, ""},
		{"16777216", 16 << 20, ""}, {" 8mb ", 8 << 20, ""}, {"max", NoLimit, ""}, {"-1", NoLimit, ""},
		{"64x", 0, `unknown unit "x"`}, {"m", 0, "not a number"}, {"", 0, "not a number"},
		{"1m", 0, "below the minimum of 6m"}, {"-5m", 0, "not a number"}, {"99999999999t", 0, "too large"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMemory(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line with %q wrapping ErrInvalid", err, tc.err)
			}
		})
	}
}

func TestParseCPUs(t *testing.T) {
	n := runtime.NumCPU()
	for _, tc := range []struct {
		in    string
		quota int64
		ok    bool
	}{
		{"0.5", 50000, true}, {"1", 100000, true}, {"0.01", 1000, true}, {fmt.Sprint(n), int64(n) * 100000, true},
		{"max", NoLimit, true}, {"0", 0, false}, {"0.001", 0, false}, {fmt.Sprint(n + 1), 0, false}, {"half", 0, false}, {"NaN", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			q, err := ParseCPUs(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "from 0.01 to") {
					t.Fatalf("error %v, want ErrInvalid naming the range", err)
				}
				return
			}
			if err != nil || q.Quota != tc.quota || q.Period != DefaultCPUPeriod {
				t.Fatalf("got %+v, %v; want quota %d", q, err, tc.quota)
			}
		})
	}
	if q, _ := ParseCPUs("0.5"); q.CPUs() != 0.5 {
		t.Errorf("CPUs() %v, want 0.5", q.CPUs())
	}
}

func TestParsePids(t *testing.T) {
	for in, want := range map[string]int64{"50": 50, "1": 1, "max": NoLimit, "-1": NoLimit} {
		if got, err := ParsePids(in); err != nil || got != want {
			t.Errorf("ParsePids(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-2", "ten", "1.5", ""} {
		if _, err := ParsePids(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePids(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func TestUpdate(t *testing.T) {
	mem, swap, pids := int64(64<<20), int64(32<<20), int64(50)
	cpu := CPUQuota{Quota: 50000, Period: 100000}
	if err := (&Update{}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty update: %v, want ErrInvalid", err)
	}
	if err := (&Update{Memory: &mem, MemorySwap: &swap}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("swap below memory: %v, want ErrInvalid", err)
	}
	u := &Update{Memory: &mem, CPU: &cpu, Pids: &pids}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	r := u.Resources()
	if *r.Memory.Limit != mem || r.Memory.Swap != nil || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 50 {
		t.Errorf("resources %+v", r)
	}
	if got := u.String(); got != "memory=67108864 cpu-quota=50000/100000 pids=50" {
		t.Errorf("String() = %q", got)
	}
}

func TestKeepSwap(t *testing.T) {
	mem := int64(64 << 20)
	noLimit := int64(NoLimit)
	v1 := func(swapLimit uint64) *Memory {
		return &Memory{Version: 1, SwapLimit: swapLimit, V1: &MemoryV1{MemSwap: &Counter{}}}
	}
	for _, tc := range []struct {
		name string
		mem  *int64
		cur  *Memory
		want *int64 // MemorySwap after
	}{
		{"v1 without swap keeps none", &mem, v1(0), ptr(mem)},
		{"v2 with 32m of swap keeps 32m", &mem, &Memory{Version: 2, SwapLimit: 32 << 20}, ptr(mem + 32<<20)},
		{"unlimited swap left to the runtime", &mem, v1(Unlimited), nil},
		{"v1 without swap accounting", &mem, &Memory{Version: 1, V1: &MemoryV1{}}, nil},
		{"memory limit removed", &noLimit, v1(0), ptr(NoLimit)},
		{"memory not changed", nil, v1(0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &Update{Memory: tc.mem}
			u.KeepSwap(tc.cur)
			if (u.MemorySwap == nil) != (tc.want == nil) || u.MemorySwap != nil && *u.MemorySwap != *tc.want {
				t.Errorf("MemorySwap %v, want %v", deref(u.MemorySwap), deref(tc.want))
			}
		})
	}
}

func ptr(v int64) *int64 { return &v }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
