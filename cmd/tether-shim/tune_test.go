package main

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRuntimeEnv(t *testing.T) {
	gogc := "GOGC=" + strconv.Itoa(shimGOGC)
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"empty", nil, []string{"GOGC=50", "GOMAXPROCS=1"}},
		{"kept", []string{"PATH=/bin", "HOME=/root"}, []string{"GOGC=50", "GOMAXPROCS=1", "HOME=/root", "PATH=/bin"}},
		{"the manager's own settings replaced", []string{"GOMAXPROCS=8", "GOGC=off", "X=1"}, []string{"GOGC=50", "GOMAXPROCS=1", "X=1"}},
		{"a prefix is not a match", []string{"GOGCX=1"}, []string{"GOGC=50", "GOGCX=1", "GOMAXPROCS=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runtimeEnv(tc.in)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("runtimeEnv(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !slices.Contains(got, gogc) {
				t.Fatalf("runtimeEnv(%q) lacks %s", tc.in, gogc)
			}
		})
	}
}

// TestAllocsMetric: trimWhenIdle silently does nothing without this
// metric, so a Go release that renames it must fail here.
func TestAllocsMetric(t *testing.T) {
	for _, d := range metrics.All() {
		if d.Name == allocsMetric {
			if d.Kind != metrics.KindUint64 || !d.Cumulative {
				t.Fatalf("%s is %v, cumulative %v: want a cumulative uint64", allocsMetric, d.Kind, d.Cumulative)
			}
			return
		}
	}
	t.Fatalf("the runtime has no metric %s", allocsMetric)
}

func TestStatThreads(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
	}{
		{"1234 (tether-shim) S 1 1234 1234 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 6 0 12345 1000000 300 18446744073709551615", 6},
		{"7 (a b) c) (d) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 17 0 1 2 3", 17},
		{"7 (x) S 1 2 3", 0},
		{"garbage", 0},
	} {
		if got := statThreads([]byte(tc.stat)); got != tc.want {
			t.Errorf("statThreads(%q) = %d, want %d", tc.stat, got, tc.want)
		}
	}
	if n := threadCount(); n < 1 {
		t.Fatalf("threadCount() = %d for this test process", n)
	}
}

// TestTrimThreads makes the runtime start threads for concurrent blocking
// calls, then trims back below what it had.
func TestTrimThreads(t *testing.T) {
	before := threadCount()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			runtime.LockOSThread() // a thread each, given back on Unlock
			defer runtime.UnlockOSThread()
			unix.Nanosleep(&unix.Timespec{Nsec: 50e6}, nil)
		})
	}
	wg.Wait()
	grown := threadCount()
	if grown < before+4 {
		t.Fatalf("threads %d before, %d after 8 concurrent locked sleeps: expected growth", before, grown)
	}
	keep := grown - 5
	trimThreads(keep)
	if n := threadCount(); n > keep {
		t.Fatalf("trimThreads(%d) left %d threads (had %d)", keep, n, grown)
	}
}
