package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/tether-run/tether/crilog"
	"golang.org/x/sys/unix"
)

// Limits of a live follower (attach, exec with Attach). A follower may
// fall behind the output by followerChunks chunks or followerBytes bytes,
// whichever comes first; past that it is dropped: it loses its place and
// its connection is cut, the container never waits for it, and the log
// still has every byte. The chunks are shared by all followers, so the
// shim holds at most about followerBytes for all of them together.
const (
	followerChunks = 1024
	followerBytes  = 16 << 20
)

// ioDrainTimeout bounds how long an exit waits for output still in the pipes
// (a daemonised grandchild may hold them open for ever).
const ioDrainTimeout = 2 * time.Second

type chunk struct {
	kind byte
	data []byte
}

// follower is one live reader of a process's output. Its fields other than
// ch, queued and kicked are guarded by the fanout's mutex.
type follower struct {
	ch     chan chunk
	queued atomic.Int64  // bytes sent on ch and not yet taken
	kicked chan struct{} // closed when it is dropped for falling behind
	closed bool          // ch is closed
	ended  bool          // ch was closed because the output ended: nothing was missed
}

// fanout copies output to live followers without ever blocking the writer.
type fanout struct {
	mu   sync.Mutex
	subs map[*follower]struct{}
	done bool
}

// add registers a new follower; it sees output from now on. After the
// output has ended it gets a follower whose channel is already closed.
func (f *fanout) add() *follower {
	fl := &follower{ch: make(chan chunk, followerChunks), kicked: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		fl.closed, fl.ended = true, true
		close(fl.ch)
		return fl
	}
	if f.subs == nil {
		f.subs = map[*follower]struct{}{}
	}
	f.subs[fl] = struct{}{}
	return fl
}

// remove unregisters a follower that went away.
func (f *fanout) remove(fl *follower) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop(fl)
}

// drop unregisters fl and closes its channel; f.mu is held.
func (f *fanout) drop(fl *follower) {
	delete(f.subs, fl)
	if !fl.closed {
		fl.closed = true
		close(fl.ch)
	}
}

// kick drops a follower that fell behind; f.mu is held.
func (f *fanout) kick(fl *follower) {
	if !fl.closed {
		close(fl.kicked)
	}
	f.drop(fl)
}

// tee is called by the log copier with each chunk it read; p is reused by
// the caller, so it is copied, and only when someone listens. It never
// blocks: a follower without room is kicked.
func (f *fanout) tee(s crilog.Stream, p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		return
	}
	c := chunk{kind: FrameStdout, data: append([]byte(nil), p...)}
	if s == crilog.Stderr {
		c.kind = FrameStderr
	}
	n := int64(len(p))
	for fl := range f.subs {
		if fl.queued.Add(n) > followerBytes {
			f.kick(fl)
			continue
		}
		select {
		case fl.ch <- c:
		default:
			f.kick(fl)
		}
	}
}

// close ends every follower once all output has been delivered.
func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	for fl := range f.subs {
		fl.ended = true
		f.drop(fl)
	}
}

// deliver writes fl's output to conn as frames until the output ends, fl
// is kicked, or a write fails (the client went away). It reports whether
// the client got all of the output, in which case the caller may send the
// exit frame. A kicked follower's blocked write is cut short through a
// write deadline, so a client that stopped reading holds nothing but its
// connection, which the caller then closes.
func (f *fanout) deliver(fl *follower, conn net.Conn) bool {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-fl.kicked:
			conn.SetWriteDeadline(time.Unix(1, 0))
		case <-stop:
		}
	}()
	for c := range fl.ch {
		fl.queued.Add(-int64(len(c.data)))
		if err := WriteFrame(conn, c.kind, c.data); err != nil {
			f.remove(fl)
			for range fl.ch {
			}
			return false
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return fl.ended
}

// procIO is the output and input of one process: the log it is drained
// into, its live followers, its stdin and, with a terminal, its pty master.
type procIO struct {
	log     *crilog.Writer
	fan     fanout
	copies  sync.WaitGroup
	mu      sync.Mutex
	stdin   io.WriteCloser // nil without stdin
	console console.Console
	closed  bool // close was called: the process has exited or is deleted
	// warn, when set, hears of output that could not be written to the
	// log (a full disk): it was dropped, and the draining went on.
	warn func(error)
}

// errIOClosed answers input and resizes sent after the process's IO was
// released (it has exited).
var errIOClosed = fmt.Errorf("the process has exited: %w", ErrNotRunning)

// stdioFiles are the runtime's ends of the pipes, closed by the shim once
// the runtime has handed them to the process.
type stdioFiles struct {
	in, out, err *os.File
}

func (f *stdioFiles) close() {
	for _, x := range []*os.File{f.in, f.out, f.err} {
		if x != nil {
			x.Close()
		}
	}
}

// newPipes creates the pipes for a process without a terminal and starts
// draining them into the log. The returned files go to the runtime.
func (pio *procIO) newPipes(withStdin bool) (*stdioFiles, error) {
	var rt stdioFiles
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	rt.out, rt.err = outW, errW
	growPipe(outR)
	growPipe(errR)
	if withStdin {
		inR, inW, err := os.Pipe()
		if err != nil {
			rt.close()
			outR.Close()
			errR.Close()
			return nil, err
		}
		rt.in, pio.stdin = inR, inW
	}
	pio.drain(crilog.Stdout, outR)
	pio.drain(crilog.Stderr, errR)
	return &rt, nil
}

// pipeSize is the capacity asked for the output pipes: a writer
// that outpaces the shim for a moment fills it instead of blocking, and the
// shim reads large chunks (fewer log entries, wake-ups and writes). The
// kernel caps it at /proc/sys/fs/pipe-max-size (1 MiB by default); a
// refusal is harmless, the pipe keeps its 64 KiB.
const pipeSize = 1 << 20

func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
}

// drain copies r into the log until EOF, then closes r.
func (pio *procIO) drain(s crilog.Stream, r io.ReadCloser) {
	pio.copies.Add(1)
	go func() {
		defer pio.copies.Done()
		defer r.Close()
		_, err := pio.log.Copy(s, eioAsEOF{r}, pio.fan.tee)
		if err != nil && pio.warn != nil {
			pio.warn(err)
		}
	}()
}

// setConsole takes the pty master: output is drained like stdout, input
// goes to it.
func (pio *procIO) setConsole(c console.Console) {
	pio.mu.Lock()
	pio.console = c
	pio.stdin = c
	pio.mu.Unlock()
	pio.copies.Add(1)
	go func() {
		defer pio.copies.Done()
		_, err := pio.log.Copy(crilog.Stdout, eioAsEOF{c}, pio.fan.tee)
		if err != nil && pio.warn != nil {
			pio.warn(err)
		}
	}()
}

// eioAsEOF ends a pty read cleanly: reading a master whose slave side has
// been closed by every process gives EIO, which means end of output.
type eioAsEOF struct{ r io.Reader }

func (e eioAsEOF) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

// waitDrained waits for the copiers, at most ioDrainTimeout, then flushes
// the log. It reports whether everything was drained.
func (pio *procIO) waitDrained() bool {
	done := make(chan struct{})
	go func() { pio.copies.Wait(); close(done) }()
	ok := true
	select {
	case <-done:
	case <-time.After(ioDrainTimeout):
		ok = false
	}
	pio.log.Flush()
	pio.fan.close()
	return ok
}

// writeStdin forwards input; it blocks while the process does not read.
func (pio *procIO) writeStdin(p []byte) error {
	pio.mu.Lock()
	w, closed := pio.stdin, pio.closed
	pio.mu.Unlock()
	if closed {
		return errIOClosed
	}
	if w == nil {
		return errors.New("stdin is closed or was not opened: create the container with -i")
	}
	_, err := w.Write(p)
	return err
}

// closeStdin delivers end of input. With a terminal it sends the EOF
// character instead, since closing the master would hang up the process.
func (pio *procIO) closeStdin() error {
	pio.mu.Lock()
	defer pio.mu.Unlock()
	if pio.closed {
		return nil // nothing reads it any more
	}
	if pio.console != nil {
		_, err := pio.console.Write([]byte{4})
		return err
	}
	if pio.stdin == nil {
		return nil
	}
	err := pio.stdin.Close()
	pio.stdin = nil
	return err
}

func (pio *procIO) resize(w, h uint16) error {
	pio.mu.Lock()
	defer pio.mu.Unlock()
	if pio.closed {
		return errIOClosed
	}
	if pio.console == nil {
		return errors.New("no terminal: create the process with -t")
	}
	return pio.console.Resize(console.WinSize{Width: w, Height: h})
}

// close releases everything once the process has exited (exec'd
// processes) or is deleted (init). Later input and resizes get
// errIOClosed.
func (pio *procIO) close() {
	pio.closeStdin()
	pio.mu.Lock()
	if pio.console != nil {
		pio.console.Close()
	}
	pio.closed = true
	pio.mu.Unlock()
	pio.log.Close()
}
