package conmon

import (
	"net"
	"sync"
	"testing"
	"time"
)

type stdinRecorder struct {
	mu   sync.Mutex
	got  []byte
	done bool
}

func (s *stdinRecorder) write(p []byte) { s.mu.Lock(); s.got = append(s.got, p...); s.mu.Unlock() }
func (s *stdinRecorder) clientDone()    { s.mu.Lock(); s.done = true; s.mu.Unlock() }

// TestAttachQueuedClientGetsFirstOutput: a client that connected before
// the first output, while the accept goroutine has not run (podman
// connects, then starts the container), gets that output; its stdin works
// too.
func TestAttachQueuedClientGetsFirstOutput(t *testing.T) {
	dir := t.TempDir()
	in := &stdinRecorder{}
	a, err := listenAttach(&Options{Bundle: dir, FullAttach: true}, in)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: a.path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No accept goroutine: only send can take the queued connection.
	a.send(attachStdout, []byte("first"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, bufSize+1)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "\x02first" {
		t.Fatalf("the queued client read %q, %v; want the first output", buf[:n], err)
	}
	if _, err := c.Write([]byte("typed")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in.mu.Lock()
		got, done := string(in.got), in.done
		in.mu.Unlock()
		if got == "typed" && done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdin got %q, client done %v; want \"typed\", true", got, done)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A send with nothing queued and nobody new is cheap and harmless.
	a.send(attachStderr, []byte("second"))
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "\x03second" {
		t.Fatalf("then read %q, %v", buf[:n], err)
	}
}
