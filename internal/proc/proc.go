// Package proc identifies processes so that a stored pid is never mistaken
// for an unrelated process that reused the number, and signals them only
// after that identity is confirmed.
//
// An Identity is the pid, the process start time in clock ticks since boot
// (field 22 of /proc/PID/stat) and the boot id. It owns nothing else.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrGone is returned when the process an Identity names no longer exists,
// or the pid now belongs to another process (use errors.Is).
var ErrGone = errors.New("process gone")

// Identity names one process for the life of one boot.
type Identity struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	BootID    string `json:"boot_id"`
}

var bootOnce struct {
	sync.Once
	id  string
	err error
}

// BootID returns the kernel's random boot id, read once.
func BootID() (string, error) {
	bootOnce.Do(func() {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		bootOnce.id, bootOnce.err = strings.TrimSpace(string(b)), err
	})
	return bootOnce.id, bootOnce.err
}

// Stat holds the fields of /proc/PID/stat that Tether uses.
type Stat struct {
	State     byte
	PPid      int
	StartTime uint64
}

// ReadStat parses /proc/PID/stat. A missing process gives ErrGone.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return Stat{}, fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return Stat{}, err
	}
	return parseStat(b)
}

// parseStat reads the fields after the command name, which may itself hold
// spaces and parentheses, so it starts after the last ')'.
func parseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return Stat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state); start time is field 22, so f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errors.New("malformed /proc stat")
	}
	ppid, err1 := strconv.Atoi(f[1])
	st, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, errors.New("malformed /proc stat")
	}
	return Stat{State: f[0][0], PPid: ppid, StartTime: st}, nil
}

// Identify returns the Identity of a live process.
func Identify(pid int) (Identity, error) {
	st, err := ReadStat(pid)
	if err != nil {
		return Identity{}, err
	}
	boot, err := BootID()
	if err != nil {
		return Identity{}, err
	}
	return Identity{Pid: pid, StartTime: st.StartTime, BootID: boot}, nil
}

// Check reports nil when the process id names is still running (a zombie
// counts as gone, unless other threads of it live on: see LiveTask), ErrGone otherwise, including when the pid was reused or
// the record is from an earlier boot.
func (id Identity) Check() error {
	if id.Pid <= 0 {
		return fmt.Errorf("pid %d: %w", id.Pid, ErrGone)
	}
	if boot, err := BootID(); err != nil || boot != id.BootID {
		return fmt.Errorf("pid %d is from an earlier boot: %w", id.Pid, ErrGone)
	}
	st, err := ReadStat(id.Pid)
	if err != nil {
		return err
	}
	if st.StartTime != id.StartTime {
		return fmt.Errorf("pid %d now belongs to another process: %w", id.Pid, ErrGone)
	}
	if (st.State == 'Z' || st.State == 'X') && LiveTask(id.Pid) == 0 {
		return fmt.Errorf("pid %d has exited: %w", id.Pid, ErrGone)
	}
	return nil
}

// LiveTask returns a thread of process pid that has not exited: pid itself
// when its main thread runs, another thread while the main thread is a
// zombie but the process lives on, 0 when none. The main thread is a
// zombie with live threads during an execve called from another thread
// (the kernel ends every other thread first, then the caller takes over
// the pid: a Go program's exec, as a shim's in-place upgrade), and in a
// program whose main thread called pthread_exit. Either process is alive.
func LiveTask(pid int) int {
	dir := "/proc/" + strconv.Itoa(pid)
	if st, err := ReadStat(pid); err != nil {
		return 0
	} else if st.State != 'Z' && st.State != 'X' {
		return pid
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return 0
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil || tid == pid {
			continue
		}
		b, err := os.ReadFile(dir + "/task/" + t.Name() + "/stat")
		if err != nil {
			continue // exited since the listing
		}
		if st, err := parseStat(b); err == nil && st.State != 'Z' && st.State != 'X' {
			return tid
		}
	}
	return 0
}

// Cmdline returns the NUL-separated command line of process pid, read
// through a live thread when its main thread is a zombie (see LiveTask),
// whose own view has no memory left to read it from.
func Cmdline(pid int) ([]byte, error) {
	tid := LiveTask(pid)
	if tid == 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	path := "/proc/" + strconv.Itoa(pid) + "/cmdline"
	if tid != pid {
		path = "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/cmdline"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	return b, nil
}

// Alive is Check() == nil.
func (id Identity) Alive() bool { return id.Check() == nil }

// Open returns a pidfd for the process id names, taken only after its
// identity was confirmed, so signals sent through it reach that process or
// nobody. The caller closes the fd.
func (id Identity) Open() (int, error) {
	fd, err := unix.PidfdOpen(id.Pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, fmt.Errorf("pid %d: %w", id.Pid, ErrGone)
		}
		return -1, fmt.Errorf("pidfd_open %d: %w", id.Pid, err)
	}
	// The pidfd pins the process; check that it is the one we recorded.
	if err := id.Check(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Signal sends sig to the process id names, or returns ErrGone without
// signalling anyone when that process no longer exists.
func (id Identity) Signal(sig syscall.Signal) error {
	fd, err := id.Open()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pid %d: %w", id.Pid, ErrGone)
		}
		return fmt.Errorf("signal pid %d: %w", id.Pid, err)
	}
	return nil
}

// WaitExit waits until the process id names has fully exited (all its
// threads: a process killed by a signal is a zombie as soon as its main
// thread dies, while its other threads may still hold its files), at most
// d, or for ever when d < 0. It reports whether the process is gone; a pid
// that names no process, or another one, counts as gone.
func (id Identity) WaitExit(d time.Duration) bool {
	if boot, err := BootID(); err != nil || boot != id.BootID {
		return true
	}
	fd, err := unix.PidfdOpen(id.Pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	// The pidfd pins the process: check that it is the one recorded.
	if st, err := ReadStat(id.Pid); err != nil || st.StartTime != id.StartTime {
		return true
	}
	return WaitFd(fd, d)
}

// WaitFd polls a pidfd until its process has exited (true) or d has passed
// (false); d < 0 waits for ever.
func WaitFd(fd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		ms := -1
		if d >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			ms = int(left.Milliseconds()) + 1
		}
		n, err := unix.Poll(fds, ms)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return false
		case n > 0:
			return true
		}
	}
}

// sigkillBit is SIGKILL's bit in the pending-signal masks of
// /proc/PID/status.
const sigkillBit = 1 << (syscall.SIGKILL - 1)

// Dying reports whether the process id names is gone (see Check) or has a
// SIGKILL pending, so it will be gone shortly: the kernel's OOM killer
// queues SIGKILL on its victim before it counts the kill, so a process
// that is not Dying when the count is read was not that kill's victim.
func (id Identity) Dying() bool {
	if id.Check() != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(id.Pid) + "/status")
	if err != nil {
		return true // gone since Check
	}
	return killPending(b)
}

// killPending reads the SigPnd (thread) and ShdPnd (process) masks of a
// /proc/PID/status text for SIGKILL.
func killPending(status []byte) bool {
	for _, line := range strings.Split(string(status), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "SigPnd" && name != "ShdPnd") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(val), 16, 64)
		if err == nil && mask&sigkillBit != 0 {
			return true
		}
	}
	return false
}
