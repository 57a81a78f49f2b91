package shim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// TestHandoffGolden: every shipped handoff version stays readable, so a
// later binary can take over from this one. testdata/handoff-v1.json was
// written in version 1's format; it is decoded here forever.
func TestHandoffGolden(t *testing.T) {
	h, err := ReadHandoff("testdata/handoff-v1.json", "web1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 1 || h.ShimPid != 4242 || h.Lock != 9 || h.Init.Status != StatusRunning ||
		h.Init.Pid.Pid != 4300 || h.Init.Stdout != 10 || h.Init.Stderr != 11 || h.Init.Stdin != 12 {
		t.Errorf("init or header decoded wrong: %+v", h)
	}
	if len(h.Execs) != 3 || h.Execs[0].Console != 13 || h.Execs[1].PidFd != 15 || h.Execs[1].Status != StatusPaused ||
		h.Execs[2].Exit == nil || h.Execs[2].Exit.Status != 3 {
		t.Errorf("execs decoded wrong: %+v", h.Execs)
	}
	var front map[string]any
	if err := json.Unmarshal(h.Front, &front); err != nil || front["listener_fd"] != 16.0 {
		t.Errorf("front end part: %v, %v", front, err)
	}
}

// TestHandoffRefused: a handoff this binary cannot take is refused with a
// one-line error naming the problem: a version outside the range it reads
// (ErrVersion, which the old shim shows as the new binary's refusal), a
// handoff of another container, a process without a pid or with a bad
// status, an fd that would be stdio, something that is not JSON.
func TestHandoffRefused(t *testing.T) {
	golden, err := os.ReadFile("testdata/handoff-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, from, to, id string
		want               error
		says               string
	}{
		{"newer version", `"version":1,"id"`, `"version":2,"id"`, "web1", store.ErrVersion, "this shim reads versions 1 to 1"},
		{"version 0", `"version":1,"id"`, `"version":0,"id"`, "web1", store.ErrVersion, "handoff version 0"},
		{"other container", "", "", "web2", store.ErrCorrupt, `is for container "web1", not "web2"`},
		{"no pid", `"pid":{"pid":4300,`, `"pid":{"pid":0,`, "web1", store.ErrCorrupt, "init: corrupt record: no pid"},
		{"bad status", `"status":"paused"`, `"status":"frozen"`, "web1", store.ErrCorrupt, `exec "adopted"`},
		{"stdio fd", `"console_fd":13`, `"console_fd":1`, "web1", store.ErrCorrupt, "fd 1"},
		{"not json", `{"version":1`, `{"version":1,,`, "web1", store.ErrCorrupt, "handoff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := strings.Replace(string(golden), tc.from, tc.to, 1)
			if tc.from != "" && b == string(golden) {
				t.Fatalf("the case changed nothing: %q not in the golden file", tc.from)
			}
			path := filepath.Join(t.TempDir(), "handoff.json")
			if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadHandoff(path, tc.id)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("ReadHandoff: %v; want %v, one line saying %q", err, tc.want, tc.says)
			}
		})
	}
}

// TestHandoffWriteRead: what Write writes, ReadHandoff reads back, fds
// and all; the fds Dup made are close-on-exec until Exec clears them.
func TestHandoffWriteRead(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &Handoff{Version: HandoffVersion, ID: "c1", ShimPid: os.Getpid(),
		Init: HandoffProc{Status: StatusRunning}}
	h.Init.Pid.Pid = os.Getpid()
	fd, err := h.Dup(f)
	if err != nil {
		t.Fatal(err)
	}
	defer h.closeFds()
	h.Init.Stdout = fd
	if flags, err := fcntlFlags(fd); err != nil || flags&1 == 0 {
		t.Errorf("dup'd fd %d: flags %d, %v; want close-on-exec until the exec", fd, flags, err)
	}
	path := filepath.Join(t.TempDir(), "handoff.json")
	if err := h.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHandoff(path, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Init.Stdout != fd || got.ShimPid != os.Getpid() {
		t.Errorf("read back %+v, want stdout fd %d", got, fd)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}

// fcntlFlags returns fd's descriptor flags (FD_CLOEXEC).
func fcntlFlags(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0) }

// TestSlowCloseFds: the inotify instances of the process are what an
// upgrade retires (Handoff.Retired), and nothing else is.
func TestSlowCloseFds(t *testing.T) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := slowCloseFds()
	if !slices.Contains(got, fd) {
		t.Errorf("slowCloseFds() = %v: lacks the inotify fd %d", got, fd)
	}
	if slices.Contains(got, int(f.Fd())) {
		t.Errorf("slowCloseFds() = %v: has /dev/null's fd %d", got, f.Fd())
	}
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handoff{Retired: []int{dup}}
	h.CloseRetired()
	if h.Retired != nil {
		t.Errorf("Retired after CloseRetired: %v", h.Retired)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0); err == unix.EBADF {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retired fd %d still open 10 s after CloseRetired", dup)
		}
		time.Sleep(time.Millisecond)
	}
}
