package shim

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tether-run/tether/internal/proc"
	"golang.org/x/sys/unix"
)

func TestIsShimCmdline(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		args []string
		want bool
	}{
		{"serving shim", []string{"/bin/tether-shim", "serve", "--root", "/run/t", "--id", "web", "--lock-fd", "4"}, true},
		{"adopting shim", []string{"tether-shim", "serve-adopt", "--root", "/run/t/", "--id", "web"}, true},
		{"start helper", []string{"tether-shim", "start", "--root", "/run/t", "--id", "web"}, false},
		{"other container", []string{"tether-shim", "serve", "--root", "/run/t", "--id", "db"}, false},
		{"other root", []string{"tether-shim", "serve", "--root", "/run/u", "--id", "web"}, false},
		{"no root", []string{"tether-shim", "serve", "--id", "web"}, false},
		{"unrelated", []string{"sleep", "1000"}, false},
		{"empty", nil, false},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			var b []byte
			for _, a := range tc.args {
				b = append(append(b, a...), 0)
			}
			if got := isShimCmdline(b, "/run/t", "web"); got != tc.want {
				t.Fatalf("isShimCmdline(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

// TestVerifyMember: this test process runs in the host's root, so it is a
// member of a bundle whose rootfs is "/" and of no other.
func TestVerifyMember(t *testing.T) {
	self, err := proc.Identify(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc, rootfs string
		ident       proc.Identity
		foreign     bool
	}{
		{"same root", "/", self, false},
		{"other root", t.TempDir(), self, true},
		{"wrong start time", "/", proc.Identity{Pid: self.Pid, StartTime: self.StartTime + 1, BootID: self.BootID}, false},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			bundle := t.TempDir()
			cfg := `{"root":{"path":"` + tc.rootfs + `"}}`
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			err := VerifyMember(&Record{ID: "x", Bundle: bundle}, tc.ident)
			switch {
			case tc.ident == self && !tc.foreign && err != nil:
				t.Fatalf("member: %v", err)
			case tc.foreign && (!errors.Is(err, ErrForeign) || !errors.Is(err, proc.ErrGone)):
				t.Fatalf("other root: %v, want ErrForeign and proc.ErrGone", err)
			case tc.ident != self && !errors.Is(err, proc.ErrGone):
				t.Fatalf("wrong identity: %v, want proc.ErrGone", err)
			}
		})
	}
}

// procExitMessage builds the payload of a PROC_EVENT_EXIT netlink message.
func procExitMessage(tid, tgid int, code uint32) []byte {
	d := make([]byte, cnMsgLen+procEventHdrLen+24)
	ne := binary.NativeEndian
	ne.PutUint32(d[0:], cnIdxProc)
	ne.PutUint32(d[4:], cnValProc)
	ev := d[cnMsgLen:]
	ne.PutUint32(ev[0:], procEventExit)
	ne.PutUint32(ev[procEventHdrLen:], uint32(tid))
	ne.PutUint32(ev[procEventHdrLen+4:], uint32(tgid))
	ne.PutUint32(ev[procEventHdrLen+8:], code)
	return d
}

func TestExitListenerRecord(t *testing.T) {
	l := &exitListener{watch: map[int]bool{100: true}, exits: map[int]exitEvent{}, wakeup: make(chan struct{})}
	l.record(procExitMessage(101, 100, 0))      // a thread of the group
	l.record(procExitMessage(100, 100, 7<<8))   // the leader: exit(7)
	l.record(procExitMessage(200, 200, 9))      // not watched
	l.record(procExitMessage(100, 100, 0)[:20]) // truncated: ignored
	if ev, ok := l.exits[100]; !ok || ev.tid != 100 || ev.code != 7<<8 {
		t.Fatalf("watched group: %+v, %v", ev, ok)
	}
	if _, ok := l.exits[200]; ok {
		t.Fatal("an unwatched process was kept")
	}
}

// TestListenExits asks the kernel for the exit status of a process that is
// not our child's business: the status comes from the connector alone.
func TestListenExits(t *testing.T) {
	l, err := listenExits()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Skipf("no process events connector here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	for _, tc := range []struct {
		script string
		want   int
	}{{"read x; exit 7", 7}, {"read x; kill -9 $$", 137}} {
		cmd := exec.Command("sh", "-c", tc.script)
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		l.watchPid(cmd.Process.Pid)
		w.Close()
		cmd.Wait()
		got, err := l.statusOf(cmd.Process.Pid)
		if err != nil || got != tc.want {
			t.Fatalf("%q: status %d (%v), want %d", tc.script, got, err, tc.want)
		}
	}
}
