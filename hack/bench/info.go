package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machineInfo describes where the figures come from: date, CPU, memory,
// kernel, runtime and Go versions.
func machineInfo(b *bench) string {
	var u unix.Utsname
	unix.Uname(&u)
	mem, _ := readKV("/proc/meminfo")
	parts := []string{
		time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		fmt.Sprintf("%d× %s", runtime.NumCPU(), cpuModel()),
		fmt.Sprintf("%.0f GiB RAM", mem["MemTotal"]/1024/1024),
		"Linux " + unix.ByteSliceToString(u.Release[:]),
		versionLine(b.rtPath, "--version"),
		runtime.Version(),
	}
	return strings.Join(parts, ", ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// versionLine is the first line of `bin args...`.
func versionLine(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return bin
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// loadAvg is the 1, 5 and 15 minute load average, which says how busy the
// shared machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
