package proc

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ReopenOutput opens new read ends of the pipes that are the stdout and
// stderr of pid (through /proc/PID/fd/1 and 2), so output written after an
// adoption reaches the log again. The read ends held by the dead shim are
// gone and nothing can bring back what was written in between. A stream
// that is not a pipe (a terminal, a file the process opened) is skipped;
// stderr that is the same pipe as stdout is opened once. Files come back
// non-blocking, closed on exec.
func ReopenOutput(pid int) (stdout, stderr *os.File) {
	open := func(n int) (*os.File, unix.Stat_t, bool) {
		path := "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(n)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return nil, st, false
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, st, false
		}
		return os.NewFile(uintptr(fd), path), st, true
	}
	out, ost, ok1 := open(1)
	errf, est, ok2 := open(2)
	if ok1 && ok2 && ost.Dev == est.Dev && ost.Ino == est.Ino {
		errf.Close()
		errf, ok2 = nil, false
	}
	if !ok1 {
		out = nil
	}
	if !ok2 {
		errf = nil
	}
	return out, errf
}
