package proc

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Fd is one open file descriptor of a process and what it points at: the
// target of its /proc/PID/fd link ("pipe:[123]", "anon_inode:inotify", a
// path).
type Fd struct {
	Num    int
	Target string
}

// Fds lists the open fds of pid (this process when pid is 0) by number. An
// fd closed while the list is made (the listing's own, for this process)
// is left out.
func Fds(pid int) ([]Fd, error) {
	dir := "/proc/self/fd"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/fd"
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fds := make([]Fd, 0, len(ents))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			fds = append(fds, Fd{Num: n, Target: t})
		}
	}
	slices.SortFunc(fds, func(a, b Fd) int { return a.Num - b.Num }) // ReadDir sorts by name
	return fds, nil
}
