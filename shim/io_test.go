package shim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/shimapi"
)

// TestFanoutKicksSlowFollower: a follower that does not take its chunks is
// dropped once it is behind by followerChunks chunks or followerBytes
// bytes, whichever comes first; tee never blocks, and other followers are
// not affected.
func TestFanoutKicksSlowFollower(t *testing.T) {
	tests := []struct {
		doc     string
		size    int // bytes per chunk
		keptFor int // chunks the follower holds before it is kicked
	}{
		{"by chunk count", 10, followerChunks},
		{"by bytes", 1 << 20, followerBytes / (1 << 20)},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			var f fanout
			slow, fast := f.add(), f.add()
			p := make([]byte, tt.size)
			for i := range tt.keptFor {
				f.tee(crilog.Stdout, p)
				take(fast)
				select {
				case <-slow.kicked:
					t.Fatalf("kicked after %d chunks, want after %d", i+1, tt.keptFor)
				default:
				}
			}
			f.tee(crilog.Stderr, p)
			select {
			case <-slow.kicked:
			default:
				t.Fatalf("not kicked after %d chunks", tt.keptFor+1)
			}
			if c := take(fast); !c.stderr || len(c.data) != tt.size {
				t.Errorf("the other follower got stderr=%v, %d bytes", c.stderr, len(c.data))
			}
			n := 0
			for range slow.ch { // closed, with what it had
				n++
			}
			if n != tt.keptFor {
				t.Errorf("kicked follower kept %d chunks, want %d", n, tt.keptFor)
			}
			f.close()
			if fast.ended != true || slow.ended {
				t.Errorf("ended: fast %v, slow %v; want true, false", fast.ended, slow.ended)
			}
		})
	}
}

// take receives one chunk as deliver does.
func take(fl *Follower) chunk {
	c := <-fl.ch
	fl.queued.Add(-int64(len(c.data)))
	return c
}

// TestFanoutDeliver: Follower.Copy writes every chunk as a frame, in order, and
// reports true when the output ended; a follower added after the end gets
// no frames and true at once.
func TestFanoutDeliver(t *testing.T) {
	var f fanout
	fl := f.add()
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan []string, 1)
	go func() {
		var frames []string
		r := bufio.NewReader(client)
		for {
			kind, data, err := shimapi.ReadFrame(r, nil)
			if err != nil {
				got <- frames
				return
			}
			frames = append(frames, string(rune('0'+kind))+string(data))
		}
	}()
	f.tee(crilog.Stdout, []byte("out"))
	f.tee(crilog.Stderr, []byte("err"))
	buf := []byte("reused")
	f.tee(crilog.Stdout, buf)
	copy(buf, "XXXXXX") // tee copied it
	f.close()
	if !deliver(fl, server) {
		t.Fatal("deliver reported a missed output")
	}
	server.Close()
	want := []string{"1out", "2err", "1reused"}
	if frames := <-got; len(frames) != 3 || frames[0] != want[0] || frames[1] != want[1] || frames[2] != want[2] {
		t.Errorf("frames %q, want %q", frames, want)
	}
	late := f.add()
	if !deliver(late, server) {
		t.Error("a follower added after the end should be complete at once")
	}
}

// TestFanoutDeliverKicked: a client that never reads blocks deliver in a
// write; kicking the follower cuts that write short, and deliver reports
// the output as missed.
func TestFanoutDeliverKicked(t *testing.T) {
	var f fanout
	fl := f.add()
	server, client := net.Pipe() // unbuffered: the first write blocks
	defer client.Close()
	defer server.Close()
	f.tee(crilog.Stdout, []byte("first"))
	result := make(chan bool, 1)
	go func() { result <- deliver(fl, server) }()
	p := make([]byte, 1<<20)
	for range followerBytes/len(p) + 1 {
		f.tee(crilog.Stdout, p)
	}
	select {
	case complete := <-result:
		if complete {
			t.Error("deliver to a kicked follower reported complete")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deliver stayed blocked after its follower was kicked")
	}
	f.mu.Lock()
	n := len(f.subs)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("%d followers still registered", n)
	}
}

// deliver writes a follower's output as frames, as tether's control
// server does.
func deliver(fl *Follower, conn net.Conn) bool {
	return fl.Copy(conn, func(stderr bool, p []byte) error {
		kind := shimapi.FrameStdout
		if stderr {
			kind = shimapi.FrameStderr
		}
		return shimapi.WriteFrame(conn, kind, p)
	})
}

// TestProcIOAfterClose: once a process's IO is released, input and
// resizes say it has exited (errors.Is ErrNotRunning) and closing stdin is
// a no-op.
func TestProcIOAfterClose(t *testing.T) {
	log, err := crilog.Open(filepath.Join(t.TempDir(), "log"), crilog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pio := &procIO{log: log, stdin: w}
	if err := pio.writeStdin([]byte("x")); err != nil {
		t.Fatalf("write before close: %v", err)
	}
	pio.close()
	if b, _ := io.ReadAll(r); !bytes.Equal(b, []byte("x")) {
		t.Errorf("stdin read %q, want the input then EOF", b)
	}
	if err := pio.writeStdin([]byte("y")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("write after close: %v, want ErrNotRunning", err)
	}
	if err := pio.resize(80, 24); !errors.Is(err, ErrNotRunning) {
		t.Errorf("resize after close: %v, want ErrNotRunning", err)
	}
	if err := pio.closeStdin(); err != nil {
		t.Errorf("close stdin after close: %v", err)
	}
}
