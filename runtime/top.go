package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tether-run/tether/internal/proc"
)

// Process is one process of a container, as Top lists it.
type Process struct {
	// Pid and PPid are host pids.
	Pid  int `json:"pid"`
	PPid int `json:"ppid"`
	// UID is the effective user id; User its name in the container's
	// /etc/passwd, or the number when it has none.
	UID  int    `json:"uid"`
	User string `json:"user"`
	// CPUTime is the user plus system time the process has used.
	CPUTime time.Duration `json:"cpu_time_ns"`
	// Command is its command line ("[name]" when it has none).
	Command string `json:"command"`
}

// Top lists the container's processes: the pids from its shim (the OCI
// runtime's ps), each read from /proc of this host. A process that ends
// while it is read is left out. A stopped container has none.
func (c *Container) Top(ctx context.Context) ([]Process, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	pids, err := c.client().Pids(ctx)
	if err != nil {
		return nil, c.wrap("top", err)
	}
	users := map[string]map[int]string{} // per root: uid -> name
	var out []Process
	for _, pid := range pids {
		in, err := proc.ReadInfo(pid)
		if errors.Is(err, proc.ErrGone) {
			continue
		}
		if err != nil {
			return nil, c.wrap("top", err)
		}
		out = append(out, Process{Pid: in.Pid, PPid: in.PPid, UID: in.UID,
			User: userName(users, pid, in.UID), CPUTime: in.CPUTime, Command: in.Command})
	}
	return out, nil
}

// userName names uid from the /etc/passwd that process pid sees (its own
// root), caching each root's table in users.
func userName(users map[string]map[int]string, pid, uid int) string {
	root, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/root")
	if err != nil {
		root = ""
	}
	names, ok := users[root]
	if !ok {
		names = readPasswd("/proc/" + strconv.Itoa(pid) + "/root/etc/passwd")
		users[root] = names
	}
	if n, ok := names[containerUID(pid, uid)]; ok {
		return n
	}
	return strconv.Itoa(uid)
}

// containerUID is host uid as process pid's user namespace sees it (a
// rootless container maps its user to 0), or uid when no mapping holds it.
func containerUID(pid, uid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/uid_map")
	if err != nil {
		return uid
	}
	for _, line := range strings.Split(string(b), "\n") {
		var inside, outside, size int
		if n, _ := fmt.Sscan(line, &inside, &outside, &size); n == 3 && uid >= outside && uid-outside < size {
			return uid - outside + inside
		}
	}
	return uid
}

// readPasswd maps the uids of a passwd file to their names; a missing or
// unreadable file gives an empty map.
func readPasswd(path string) map[int]string {
	names := map[int]string{}
	f, err := os.Open(path)
	if err != nil {
		return names
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err := strconv.Atoi(f[2])
		if _, seen := names[uid]; err == nil && !seen {
			names[uid] = f[0]
		}
	}
	return names
}
