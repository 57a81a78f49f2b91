// Package gotune holds the Go runtime settings of every long-lived shim
// process: tether-shim, containerd-shim-tether-v1's serving shim and
// tether-conmon. A shim is small, lives as long as its container and is
// idle almost all the time, so it is tuned for memory, not for throughput
// (README, "Shim memory: what we chose and why"; figures from `make
// bench`):
//
//   - GOMAXPROCS=1: one P means one mcache, one set of GC work buffers and
//     fewer threads; the shim's work (a copy loop per stream, a request at a
//     time) is not parallel anyway. Set in the environment by whoever
//     starts the shim (Env: the start helper, a short-lived manager that
//     starts the shim itself, containerd-shim-tether-v1's start), so the
//     runtime starts that way.
//   - GOGC=GOGC: a smaller heap goal than Go's default, so garbage
//     between collections stays small, but not so small that the first
//     collection comes during start-up: the first one costs about 0.5 MiB
//     of runtime metadata for good (span sets for every size class in use),
//     more than the garbage of start-up it would free.
//   - TrimWhenIdle: the background scavenger only returns memory down to the
//     heap goal and only after a GC, so a shim that served a burst (execs,
//     logs, many requests) would keep those pages; once it is idle again
//     after enough allocation, it collects and returns every free page.
package gotune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

const (
	// GOGC is the shim's GOGC: the heap may grow by half its live size
	// between collections, and by 2 MiB (4 MiB x 50%) before the first.
	GOGC = 50
	// trimPeriod is how often TrimWhenIdle looks at the allocation count
	// while the shim is busy; trimMaxPeriod while it is idle.
	trimPeriod    = 2 * time.Second
	trimMaxPeriod = 8 * time.Second
	// trimAfter is how much must have been allocated since start-up (the
	// first trimPeriod) or the last trim before going idle triggers a trim.
	// Start-up itself never does: it allocates about 1.5 MiB, most of it
	// buffers never touched, and a trim then would cost more (the first
	// collection's own metadata) than it returns.
	trimAfter = 1 << 20
	// allocsMetric is the runtime's count of bytes allocated so far.
	allocsMetric = "/gc/heap/allocs:bytes"
)

// Env returns env with the shim's runtime settings, replacing any the
// starter had for itself (a manager's, containerd's GOMAXPROCS=2).
func Env(env []string) []string {
	set := map[string]string{"GOMAXPROCS": "1", "GOGC": strconv.Itoa(GOGC)}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// Apply applies the settings to a shim started without them in its
// environment, and starts TrimWhenIdle. Then it takes them out of the
// environment: they are the shim's own tuning, read by its runtime at
// start-up, and the processes the shim starts (runc is a Go program too,
// and so are podman's exit commands) should start with Go's defaults, not
// one P and GOGC=50. Call it first thing in the shim's main.
func Apply() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GOGC)
	}
	os.Unsetenv("GOMAXPROCS")
	os.Unsetenv("GOGC")
	go TrimWhenIdle(trimPeriod, trimAfter)
}

// TrimWhenIdle runs forever: it wakes up now and then and reads the number
// of bytes allocated so far. The count at its first look, one period after
// the shim started, is the base: start-up itself is never trimmed. From
// then on, when at least after bytes were allocated since the base and
// nothing since the last look, it collects garbage, returns all free memory
// to the OS and takes the count as the new base. It looks every period
// while there is activity or a trim may be due, and backs off to every
// trimMaxPeriod otherwise, so that hundreds of idle shims do not wake the
// machine every few seconds. It allocates nothing itself, so an idle shim
// stays idle.
func TrimWhenIdle(period time.Duration, after uint64) {
	sample := []metrics.Sample{{Name: allocsMetric}}
	allocs := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	// The first read sets up runtime/metrics: let it be part of start-up.
	if metrics.Read(sample); sample[0].Value.Kind() != metrics.KindUint64 {
		return // a Go release without this metric: no trimming
	}
	wait := period
	timer := time.NewTimer(wait)
	<-timer.C
	base := allocs()
	prev := base
	for {
		timer.Reset(wait)
		<-timer.C
		now := allocs()
		switch {
		case now != prev: // busy: look again soon
			wait = period
		case now-base >= after:
			debug.FreeOSMemory()
			now = allocs()
			base = now
		default: // idle, nothing to trim
			wait = min(2*wait, trimMaxPeriod)
		}
		prev = now
	}
}
