package cnproc

import (
	"encoding/binary"
	"errors"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

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
	l := &Listener{watch: map[int]bool{100: true}, exits: map[int]exitEvent{}, wakeup: make(chan struct{})}
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
	l, err := Listen()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Skipf("no process events connector here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
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
		l.Watch(cmd.Process.Pid)
		w.Close()
		cmd.Wait()
		got, err := l.StatusOf(cmd.Process.Pid)
		if err != nil || got != tc.want {
			t.Fatalf("%q: status %d (%v), want %d", tc.script, got, err, tc.want)
		}
	}
}

// TestForEachMessage: two messages in one datagram, each padded to 4
// bytes, both seen with their payloads; a truncated one ends the walk.
func TestForEachMessage(t *testing.T) {
	msg := func(payload []byte) []byte {
		l := unix.NLMSG_HDRLEN + len(payload)
		b := make([]byte, (l+3)&^3)
		binary.NativeEndian.PutUint32(b, uint32(l))
		copy(b[unix.NLMSG_HDRLEN:], payload)
		return b
	}
	d := append(msg([]byte("abcde")), msg([]byte("xy"))...)
	var got []string
	forEachMessage(d, func(p []byte) { got = append(got, string(p)) })
	if len(got) != 2 || got[0] != "abcde" || got[1] != "xy" {
		t.Fatalf("payloads %q", got)
	}
	got = nil
	forEachMessage(d[:len(d)-6], func(p []byte) { got = append(got, string(p)) })
	if len(got) != 1 {
		t.Fatalf("truncated datagram: payloads %q, want the first only", got)
	}
}
