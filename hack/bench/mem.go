package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memInfo is what one process costs: proportional and resident set size
// and anonymous memory (KiB, from /proc/PID/smaps_rollup), threads and
// open file descriptors.
type memInfo struct {
	pss, rss, anon  float64
	threads, fds    int
	pssFile, pssAno float64
}

// readMem reads the memory, thread and fd figures of pid.
func readMem(pid int) (memInfo, error) {
	var m memInfo
	base := "/proc/" + strconv.Itoa(pid)
	vals, err := readKV(base + "/smaps_rollup")
	if err != nil {
		return m, err
	}
	m.pss, m.rss, m.anon = vals["Pss"], vals["Rss"], vals["Anonymous"]
	m.pssFile, m.pssAno = vals["Pss_File"], vals["Pss_Anon"]
	st, err := readKV(base + "/status")
	if err != nil {
		return m, err
	}
	m.threads = int(st["Threads"])
	fds, err := os.ReadDir(base + "/fd")
	if err != nil {
		return m, err
	}
	m.fds = len(fds)
	if m.rss == 0 {
		return m, fmt.Errorf("pid %d: no Rss in smaps_rollup", pid)
	}
	return m, nil
}

// readKV parses "Key:   123 kB" lines; the number is kept, the unit
// dropped (every memory figure of these files is in kB).
func readKV(path string) (map[string]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// memSet is the figures of a group of processes, one sample per process.
type memSet struct {
	pss, rss, anon, threads, fds, pssFile samples
}

func (s *memSet) add(m memInfo) {
	s.pss = append(s.pss, m.pss/1024)
	s.rss = append(s.rss, m.rss/1024)
	s.anon = append(s.anon, m.anon/1024)
	s.pssFile = append(s.pssFile, m.pssFile/1024)
	s.threads = append(s.threads, float64(m.threads))
	s.fds = append(s.fds, float64(m.fds))
}

// measurePids reads every pid; a process that cannot be read is an error.
func measurePids(pids []int) (*memSet, error) {
	s := &memSet{}
	for _, pid := range pids {
		m, err := readMem(pid)
		if err != nil {
			return nil, err
		}
		s.add(m)
	}
	return s, nil
}
