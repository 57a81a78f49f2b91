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
//     after its resident memory grew enough, it collects and returns every
//     free page.
package gotune

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	// GOGC is the shim's GOGC: the heap may grow by half its live size
	// between collections, and by 2 MiB (4 MiB x 50%) before the first.
	GOGC = 50
	// trimPeriod is how often TrimWhenIdle looks at the allocation count
	// while the shim is busy; trimMaxPeriod while it is idle.
	trimPeriod    = 2 * time.Second
	trimMaxPeriod = 8 * time.Second
	// trimAfter is how much the resident set must have grown since
	// start-up (the first trimPeriod) or the last trim for going idle to
	// trigger a trim. Start-up itself never does: a trim then would cost
	// more (the first collection's own metadata) than it returns.
	trimAfter = 256 << 10
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

// TrimWhenIdle runs forever: it wakes up now and then and reads the
// process's resident set size. The size at its first look, one period
// after the shim started, is the base: start-up itself is never trimmed.
// From then on, when the size has grown by at least after bytes since the
// base and not changed since the last look, it collects garbage, returns
// all free memory to the OS and takes the size after that as the new base.
// It looks every period while the size changes or a trim may be due, and
// backs off to every trimMaxPeriod otherwise, so that hundreds of idle
// shims do not wake the machine every few seconds. It allocates nothing
// itself, so an idle shim stays idle. The resident size is read from
// /proc/self/statm: the allocation counter of runtime/metrics would keep
// about 30 KiB of the package's tables live in every shim, and
// runtime.ReadMemStats flushes the allocation caches, after which the
// next allocations touch fresh spans (+0.5 MiB measured).
func TrimWhenIdle(period time.Duration, after uint64) {
	var buf [64]byte
	if resident(buf[:]) == 0 {
		return // no /proc: no trimming
	}
	wait := period
	timer := time.NewTimer(wait)
	<-timer.C
	base := resident(buf[:])
	prev := base
	for {
		timer.Reset(wait)
		<-timer.C
		now := resident(buf[:])
		switch {
		case now != prev: // growing or shrinking: look again soon
			wait = period
		case now >= base+after:
			debug.FreeOSMemory()
			now = resident(buf[:])
			base = now
		default: // idle, nothing to trim
			wait = min(2*wait, trimMaxPeriod)
		}
		prev = now
	}
}

// statmPath is /proc/self/statm for openat(2), made once: syscall.Open
// would allocate the C string at every look. atFDCWD is AT_FDCWD.
var statmPath = []byte("/proc/self/statm\x00")

var atFDCWD = -100 // a variable: uintptr(-100) of a constant does not compile

// resident returns the resident set size in bytes from /proc/self/statm
// (its second field, in pages), or 0 if it cannot be read. buf holds the
// file; nothing is allocated.
func resident(buf []byte) uint64 {
	r, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&statmPath[0])),
		syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return 0
	}
	fd := int(r)
	n, err := syscall.Read(fd, buf)
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return 0
	}
	return parseStatmResident(buf[:n]) * uint64(syscall.Getpagesize())
}

// parseStatmResident returns the second field of a statm line ("size
// resident shared ..."), 0 if it has none.
func parseStatmResident(b []byte) uint64 {
	field := 0
	var v uint64
	inNum := false
	for _, c := range b {
		if c >= '0' && c <= '9' {
			if !inNum {
				inNum = true
				field++
				v = 0
			}
			v = v*10 + uint64(c-'0')
			continue
		}
		if inNum && field == 2 {
			return v
		}
		inNum = false
	}
	if inNum && field == 2 {
		return v
	}
	return 0
}
