// Package cgpath gives every container a test starts a cgroup path of its
// own, unique to the test run. Without linux.cgroupsPath the runtimes put
// a container in the cgroup named after its ID, relative to their own
// cgroup, so two suites running at once with the same short ID ("c")
// shared one cgroup: a pause in one froze the other's container, and a
// create met "container's cgroup is not empty". It imports nothing of
// Tether's, so the oci package's own tests use it as well as testutil.
package cgpath

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// prefix names this test process: pid and start time, so two runs (or two
// packages of one run) never meet, even with a recycled pid.
var (
	prefix = fmt.Sprintf("tether-test-%d-%x", os.Getpid(), time.Now().UnixNano()&0xffffffff)
	seq    atomic.Int64
)

// New returns a fresh absolute linux.cgroupsPath, one level under the
// cgroup root of each hierarchy ("/tether-test-PID-TIME-N"): one level, so
// the runtime's delete removes all of it.
func New() string {
	return fmt.Sprintf("/%s-%d", prefix, seq.Add(1))
}

// Owns reports whether path is one New returned in this process.
func Owns(path string) bool {
	return strings.HasPrefix(path, "/"+prefix+"-")
}

// Remove deletes the cgroup folders of path in every mounted hierarchy (v1
// and v2), for a test's cleanup after its containers are deleted. A folder
// that is gone already is fine; one that still holds processes or child
// cgroups stays, and its error is returned.
func Remove(path string) error {
	if !Owns(path) {
		return fmt.Errorf("cgpath: %q was not made by this test process: not removing it", path)
	}
	pts, err := mountPoints()
	if err != nil {
		return err
	}
	var first error
	for _, pt := range pts {
		if err := os.Remove(filepath.Join(pt, path)); err != nil && !os.IsNotExist(err) && first == nil {
			first = err
		}
	}
	return first
}

// mountPoints lists where cgroup hierarchies (v1 and v2) are mounted.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text()) // device point type options 0 0
		if len(fields) >= 3 && (fields[2] == "cgroup" || fields[2] == "cgroup2") {
			pts = append(pts, fields[1])
		}
	}
	return pts, sc.Err()
}
