package proc

import (
	"os"
	"slices"
	"testing"
)

// TestFds: this process's fds with their targets, an open file among them
// by its path, and the same through its pid.
func TestFds(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := Fd{Num: int(f.Fd()), Target: "/dev/null"}
	for _, pid := range []int{0, os.Getpid()} {
		fds, err := Fds(pid)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(fds, want) {
			t.Errorf("Fds(%d) = %v: lacks %v", pid, fds, want)
		}
		if !slices.IsSortedFunc(fds, func(a, b Fd) int { return a.Num - b.Num }) {
			t.Errorf("Fds(%d) = %v: not in fd order", pid, fds)
		}
	}
	if _, err := Fds(-1); err == nil {
		t.Error("Fds of no process: no error")
	}
}
