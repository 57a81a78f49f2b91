package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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
	stderr bool
	data   []byte
}

// Follower is one live reader of a process's output (Attach, or Exec with
// Attach). It never holds the container up: one that falls behind is
// dropped (Kicked is closed) and loses its place; the log still has every
// byte. Its fields other than ch, queued and kicked are guarded by the
// fanout's mutex.
type Follower struct {
	fan    *fanout
	ch     chan chunk
	queued atomic.Int64  // bytes sent on ch and not yet taken
	kicked chan struct{} // closed when it is dropped for falling behind
	closed bool          // ch is closed
	ended  bool          // ch was closed because the output ended: nothing was missed
}

// fanout copies output to live followers without ever blocking the writer.
type fanout struct {
	mu   sync.Mutex
	subs map[*Follower]struct{}
	done bool
}

// add registers a new follower; it sees output from now on. After the
// output has ended it gets a follower whose channel is already closed.
func (f *fanout) add() *Follower {
	fl := &Follower{fan: f, ch: make(chan chunk, followerChunks), kicked: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		fl.closed, fl.ended = true, true
		close(fl.ch)
		return fl
	}
	if f.subs == nil {
		f.subs = map[*Follower]struct{}{}
	}
	f.subs[fl] = struct{}{}
	return fl
}

// remove unregisters a follower that went away.
func (f *fanout) remove(fl *Follower) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop(fl)
}

// drop unregisters fl and closes its channel; f.mu is held.
func (f *fanout) drop(fl *Follower) {
	delete(f.subs, fl)
	if !fl.closed {
		fl.closed = true
		close(fl.ch)
	}
}

// kick drops a follower that fell behind; f.mu is held.
func (f *fanout) kick(fl *Follower) {
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
	c := chunk{stderr: s == crilog.Stderr, data: append([]byte(nil), p...)}
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

// Deadliner is what Copy needs of a blocking writer to cut a write short
// (a net.Conn, an *os.File of a FIFO).
type Deadliner interface {
	SetWriteDeadline(time.Time) error
}

// Copy calls write with each chunk of output (stderr says which stream)
// until the output ends, the follower is dropped for falling behind, or
// write fails (the reader went away). It reports whether the reader got
// all of the output, in which case an exit may follow it. When dl is not
// nil and the follower is dropped, dl's write deadline is set in the past,
// so that a write blocked on a reader that stopped reading returns, and
// that reader holds nothing but its own connection.
func (fl *Follower) Copy(dl Deadliner, write func(stderr bool, p []byte) error) bool {
	stop := make(chan struct{})
	defer close(stop)
	if dl != nil {
		go func() {
			select {
			case <-fl.kicked:
				dl.SetWriteDeadline(time.Unix(1, 0))
			case <-stop:
			}
		}()
	}
	for c := range fl.ch {
		fl.queued.Add(-int64(len(c.data)))
		if err := write(c.stderr, c.data); err != nil {
			fl.fan.remove(fl)
			for range fl.ch {
			}
			return false
		}
	}
	fl.fan.mu.Lock()
	defer fl.fan.mu.Unlock()
	return fl.ended
}

// Kicked is closed when the follower is dropped for falling behind.
func (fl *Follower) Kicked() <-chan struct{} { return fl.kicked }

// Close unregisters the follower; Copy then returns.
func (fl *Follower) Close() { fl.fan.remove(fl) }

// procIO is the output and input of one process: the log it is drained
// into, its live followers, its stdin and, with a terminal, its pty master.
type procIO struct {
	log     *crilog.Writer // nil: no log file (IO.NoLog)
	logPath string         // IO.LogPath: "" for the store's
	fan     fanout
	copies  sync.WaitGroup
	mu      sync.Mutex
	stdin   io.WriteCloser // nil without stdin
	console console.Console
	closed  bool // close was called: the process has exited or is deleted
	// warn, when set, hears of output that could not be written to the
	// log (a full disk): it was dropped, and the draining went on.
	warn func(error)
	// stdout and stderr are the front end's sinks (IO.Stdout, IO.Stderr);
	// one whose write fails is dropped and reported to sinkWarn.
	stdout, stderr io.Writer
	sinkWarn       func(error)
	// outs are the read ends being drained (pipes, or a pollable copy of
	// the pty master), kept so an upgrade can stop the draining at a clean
	// boundary and hand them over (see handoff.go). fed: a front end's
	// input source (IO.Stdin) owns stdin. frozen: an upgrade stopped the
	// draining; input waits for the new image.
	outs   []*outEnd
	fed    bool
	frozen bool
}

// outEnd is one output stream being drained.
type outEnd struct {
	stream crilog.Stream
	f      *os.File
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

// drain copies r into the log until EOF, then closes r. An upgrade may
// stop it first (freezeOutput): r then stays open, to be handed over.
func (pio *procIO) drain(s crilog.Stream, r *os.File) {
	e := &outEnd{stream: s, f: r}
	pio.mu.Lock()
	pio.outs = append(pio.outs, e)
	pio.mu.Unlock()
	pio.copies.Add(1)
	go pio.runCopy(e)
}

// runCopy drains one stream; see drain.
func (pio *procIO) runCopy(e *outEnd) {
	defer pio.copies.Done()
	pio.copyOut(e.stream, eioAsEOF{e.f})
	pio.mu.Lock()
	defer pio.mu.Unlock()
	if pio.frozen {
		return // stopped for an upgrade: the read end is handed over
	}
	pio.outs = slices.DeleteFunc(pio.outs, func(x *outEnd) bool { return x == e })
	e.f.Close()
}

// copyOut drains r into the log, the sinks and the followers.
func (pio *procIO) copyOut(s crilog.Stream, r io.Reader) {
	sink := pio.stdout
	if s == crilog.Stderr {
		sink = pio.stderr
	}
	tee := pio.fan.tee
	if sink != nil {
		tee = func(s crilog.Stream, p []byte) {
			if sink != nil {
				if _, err := sink.Write(p); err != nil {
					pio.sinkWarn(fmt.Errorf("%s sink: %w", s, err))
					sink = nil
				}
			}
			pio.fan.tee(s, p)
		}
	}
	var err error
	if pio.log != nil {
		_, err = pio.log.Copy(s, r, tee)
	} else {
		err = copyTee(s, r, tee)
	}
	if err != nil && pio.warn != nil && !(errors.Is(err, os.ErrDeadlineExceeded) && pio.isFrozen()) {
		pio.warn(err)
	}
}

func (pio *procIO) isFrozen() bool {
	pio.mu.Lock()
	defer pio.mu.Unlock()
	return pio.frozen
}

// copyTee reads r to its end, handing each chunk to tee (no log file).
func copyTee(s crilog.Stream, r io.Reader, tee func(crilog.Stream, []byte)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			tee(s, buf[:n])
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// setConsole takes the pty master: output is drained like stdout, input
// goes to it. Both go through rw, a pollable copy of the master (see
// pollableConsole), so that an upgrade can stop the draining; the console
// itself serves resizes.
func (pio *procIO) setConsole(c console.Console, rw *os.File) {
	pio.mu.Lock()
	pio.console = c
	pio.stdin = rw
	pio.mu.Unlock()
	pio.drain(crilog.Stdout, rw)
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
	if pio.frozen {
		// The new image holds a dup of the pipe: closing ours would not
		// end the input. Input itself still flows (the pipe is handed over).
		return errUpgrading
	}
	if pio.console != nil {
		_, err := pio.stdin.Write([]byte{4})
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
	if pio.log != nil {
		pio.log.Close()
	}
}
