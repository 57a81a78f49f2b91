package containerd

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// fifoRead runs r.Read in the background and returns its result channel.
func fifoRead(r *fifoReader) <-chan string {
	got := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(r)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(b)
	}()
	return got
}

// fifoWant checks that the read gives want (all of it, then EOF) soon
// after what happened (when).
func fifoWant(t *testing.T, got <-chan string, want, when string) {
	t.Helper()
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("read %q %s, want %q", s, when, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("read still waiting 10 s %s", when)
	}
}

func newFifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stdin")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFifoReaderWaitsForTheWriter: a Read before containerd opened its end
// waits (no false EOF) and then gets what was written, then EOF when the
// writer closes; a writer that comes and goes without writing is an EOF.
func TestFifoReaderWaitsForTheWriter(t *testing.T) {
	p := newFifo(t)
	r := &fifoReader{path: p}
	defer r.Close()
	got := fifoRead(r)
	select {
	case s := <-got:
		t.Fatalf("read before any writer returned %q: want it to wait", s)
	case <-time.After(200 * time.Millisecond):
	}
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("hello")
	w.Close()
	fifoWant(t, got, "hello", "after the writer wrote and closed")

	p = newFifo(t)
	r2 := &fifoReader{path: p}
	defer r2.Close()
	got = fifoRead(r2)
	time.Sleep(100 * time.Millisecond) // the reader is open and waiting
	w, err = os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	fifoWant(t, got, "", "after a writer came and went")
}

// TestFifoReaderClosedWhileWaiting: CloseIO before containerd ever opened
// its end ends the waiting Read with EOF, and nothing stays blocked.
func TestFifoReaderClosedWhileWaiting(t *testing.T) {
	r := &fifoReader{path: newFifo(t)}
	got := fifoRead(r)
	time.Sleep(100 * time.Millisecond)
	r.Close()
	fifoWant(t, got, "", "after Close")
}
