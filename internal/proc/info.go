package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ),
// 100 on every Linux architecture Go supports.
const clockTick = time.Second / 100

// Info is what ps shows of one process.
type Info struct {
	Pid  int
	PPid int
	// UID is the effective user id (the Uid line of /proc/PID/status).
	UID int
	// CPUTime is user plus system time.
	CPUTime time.Duration
	// Command is the command line; "[name]" when the process has none
	// (a zombie, a kernel thread).
	Command string
}

// ReadInfo reads pid's Info from /proc. A missing process gives ErrGone.
func ReadInfo(pid int) (Info, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(dir + name)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return b, err
	}
	stat, err := read("stat")
	if err != nil {
		return Info{}, err
	}
	status, err := read("status")
	if err != nil {
		return Info{}, err
	}
	cmdline, err := read("cmdline")
	if err != nil {
		return Info{}, err
	}
	return parseInfo(pid, stat, status, cmdline)
}

// parseInfo builds an Info from the three /proc files.
func parseInfo(pid int, stat, status, cmdline []byte) (Info, error) {
	st, err := parseStat(stat)
	if err != nil {
		return Info{}, err
	}
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+2:]))
	// utime and stime are fields 14 and 15: f[11] and f[12]
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	uid, ok := statusUID(status)
	if err1 != nil || err2 != nil || !ok {
		return Info{}, errors.New("malformed /proc stat or status")
	}
	cmd := strings.TrimRight(string(cmdline), "\x00")
	cmd = strings.ReplaceAll(cmd, "\x00", " ")
	if cmd == "" {
		cmd = "[" + string(stat[bytes.IndexByte(stat, '(')+1:i]) + "]"
	}
	return Info{Pid: pid, PPid: st.PPid, UID: uid,
		CPUTime: time.Duration(utime+stime) * clockTick, Command: cmd}, nil
}

// statusUID is the effective uid of a /proc/PID/status text (the second
// number of its Uid line).
func statusUID(status []byte) (int, bool) {
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) < 2 {
				return 0, false
			}
			uid, err := strconv.Atoi(f[1])
			return uid, err == nil
		}
	}
	return 0, false
}
