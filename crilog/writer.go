package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	// copyBufSize is the read size of Writer.Copy. Large reads mean few
	// entries, timestamps and write calls per byte; the cost is memory,
	// two buffers per container while it runs. Reads from a pipe return at
	// most the pipe's capacity (64 KiB unless enlarged), so more would
	// rarely be used. BenchmarkCopy measures it against plain writes.
	copyBufSize = 256 << 10
	// flushAt is how many encoded bytes WriteStream gathers before it
	// writes them to the file. One read chunk of Copy normally encodes to
	// a few writev calls.
	flushAt = 1 << 20
)

// Options configures rotation of a log written by a Writer.
type Options struct {
	// MaxSize is the size in bytes a log file may reach before the Writer
	// rotates it; 0 means never rotate. Entries are never split across
	// files, so a file grows past MaxSize only when MaxSize is smaller than
	// a single entry (at most 16 KiB of text plus a 40-byte header and the
	// newline, 16425 bytes); such a file holds exactly that one entry.
	MaxSize int64
	// MaxFiles is how many rotated files (path.1 ... path.MaxFiles) are
	// kept besides path itself; 0 (or less) means 1. Rotated files beyond
	// MaxFiles left by an earlier, larger setting are not removed.
	MaxFiles int
	// Truncate, with MaxSize, empties the file instead of rotating it when
	// the next entry would take it past MaxSize, and keeps writing at its
	// start (conmon's --log-size-max); no rotated files are made.
	Truncate bool
	// NumericZone writes the zone of every timestamp as "+00:00" instead
	// of "Z" (TimeLayoutOffset), byte for byte what conmon writes; tools
	// that match conmon's files with a pattern expect it.
	NumericZone bool
}

// Writer appends entries to a log file and rotates it. It is safe for
// concurrent use, typically by one goroutine copying stdout and one copying
// stderr. It keeps no output in memory between calls: every WriteStream
// hands its bytes to the kernel before it returns.
type Writer struct {
	mu        sync.Mutex
	path      string
	opts      Options
	f         *os.File  // nil once closed
	size      int64     // bytes written to f
	b         batch     // entries encoded but not yet written
	hdr       [2][]byte // headers of the P and F entries being encoded
	rotFailed bool      // rotation failed during this WriteStream
}

// Open opens the log at path for appending, creating it with mode 0600
// (close-on-exec, like every file Go opens). If the file ends in an
// incomplete line, torn by a crash during a write, that fragment is
// truncated away so the file parses again.
func Open(path string, opts Options) (*Writer, error) {
	if opts.MaxSize < 0 {
		opts.MaxSize = 0
	}
	if opts.MaxFiles < 1 {
		opts.MaxFiles = 1
	}
	f, err := openLogFile(path, os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("crilog: %w", err)
	}
	size, err := dropTornTail(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("crilog: repair %s: %w", path, err)
	}
	return &Writer{path: path, opts: opts, f: f, size: size}, nil
}

// openLogFile opens path for appending with the given extra flags.
func openLogFile(path string, flag int) (*os.File, error) {
	return os.OpenFile(path, flag|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
}

// dropTornTail truncates f after its last '\n' and returns the new size.
func dropTornTail(f *os.File) (int64, error) {
	b, err := newBackScanner(f)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if end := b.end(); end != fi.Size() {
		return end, f.Truncate(end)
	}
	return fi.Size(), nil
}

// WriteStream records p as written to stream s at time t. It splits p
// after each '\n' into F entries; bytes after the last '\n' become a P entry
// at once (never held back for a later newline, so nothing is lost if the
// container dies); runs longer than 16 KiB are cut into P entries. It
// rotates the file as Options ask; if rotation fails it keeps writing to
// the current file and returns the rotation error after writing p.
func (w *Writer) WriteStream(s Stream, t time.Time, p []byte) error {
	if s != Stdout && s != Stderr {
		return fmt.Errorf("crilog: unknown stream %q", s)
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("crilog: time %v is outside years 0000-9999", t)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("crilog: write %s: %w", w.path, os.ErrClosed)
	}
	layout := TimeLayout
	if w.opts.NumericZone {
		layout = TimeLayoutOffset
	}
	w.hdr[1] = appendHeaderLayout(w.hdr[1][:0], t, s, layout)
	w.hdr[0] = append(w.hdr[0][:0], w.hdr[1]...)
	w.hdr[0][len(w.hdr[0])-2] = 'P'
	w.rotFailed = false
	var rotErr error
	for len(p) > 0 {
		seg, rest, full := cutLine(p)
		err := w.addEntry(seg, full)
		if errors.Is(err, errRotate) {
			rotErr = err
		} else if err != nil {
			w.b.reset()
			return err
		}
		p = rest
	}
	if err := w.flush(); err != nil {
		return err
	}
	return rotErr
}

// cutLine splits the next entry off p: its text, with the '\n' that
// follows it for an F entry.
func cutLine(p []byte) (seg, rest []byte, full bool) {
	if i := bytes.IndexByte(p[:min(len(p), maxText+1)], '\n'); i >= 0 {
		return p[:i+1], p[i+1:], true
	}
	if len(p) > maxText {
		return p[:maxText], p[maxText:], false
	}
	return p, nil, false
}

// errRotate marks a failed rotation, after which writing goes on.
var errRotate = errors.New("crilog: rotate")

// addEntry adds one entry (text with its '\n' if full) to the batch,
// rotating first if it would not fit in the current file.
func (w *Writer) addEntry(seg []byte, full bool) error {
	hdr, end := w.hdr[0], nl
	if full {
		hdr, end = w.hdr[1], nil
	}
	size := len(hdr) + len(seg) + len(end)
	var rotErr error
	if w.needRotate(size) && !w.rotFailed {
		if err := w.flush(); err != nil {
			return err
		}
		if err := w.rotate(); err != nil {
			w.rotFailed = true
			rotErr = fmt.Errorf("%w %s: %w", errRotate, w.path, err)
		}
	}
	if !w.b.room(size) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.b.add(hdr, seg, end)
	return rotErr
}

// needRotate reports whether an entry of n bytes must go to a new file.
func (w *Writer) needRotate(n int) bool {
	used := w.size + w.b.n
	return w.opts.MaxSize > 0 && used > 0 && used+int64(n) > w.opts.MaxSize
}

// flush writes the batch. After a short write it truncates the file back
// so that no torn entry is left behind.
func (w *Writer) flush() error {
	if w.b.n == 0 {
		return nil
	}
	want := w.b.n
	n, err := w.b.writeTo(w.f)
	if err == nil && n != want {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			_ = w.f.Truncate(w.size)
		}
		return fmt.Errorf("crilog: write %s: %w", w.path, err)
	}
	w.size += n
	return nil
}

// rotate shifts path.i to path.i+1 (the last one replaced and so dropped),
// renames path to path.1 and continues in a new file at path. The new file
// is created first, so a failure leaves the current file in use.
func (w *Writer) rotate() error {
	if w.opts.Truncate {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		w.size = 0
		return nil
	}
	tmp := w.path + ".next"
	nf, err := openLogFile(tmp, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return err
	}
	err = shiftRotated(w.path, w.opts.MaxFiles)
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err != nil {
		nf.Close()
		os.Remove(tmp)
		return err
	}
	old := w.f
	w.f, w.size = nf, 0
	return old.Close()
}

// shiftRotated renames path.i to path.i+1 for i = max-1 ... 1, then path to
// path.1. Missing files are skipped.
func shiftRotated(path string, max int) error {
	for i := max - 1; i >= 0; i-- {
		err := os.Rename(rotatedName(path, i), rotatedName(path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// rotatedName returns path.i, or path itself for i == 0.
func rotatedName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// Copy reads r until EOF in 256 KiB reads and records each chunk read with
// WriteStream, stamped with the time it was read. If tee is not nil it is
// called with every chunk after it has been written (for live followers);
// tee runs on the copying goroutine, so it must not block, and it must not
// keep or modify the slice. A failed write does not stop the copy: Copy
// keeps draining r, so that the container never blocks on a full pipe
// because the log cannot be written, and returns the first write error once
// r is done. Copy returns the number of bytes read from r.
func (w *Writer) Copy(s Stream, r io.Reader, tee func(Stream, []byte)) (int64, error) {
	mem := newOffHeap(copyBufSize)
	defer mem.free()
	buf := mem.b
	var total int64
	var werr error
	for {
		n, err := r.Read(buf)
		if n > 0 {
			total += int64(n)
			if e := w.WriteStream(s, time.Now(), buf[:n]); e != nil && werr == nil {
				werr = e
			}
			if tee != nil {
				tee(s, buf[:n])
			}
		}
		if err == io.EOF {
			return total, werr
		}
		if err != nil {
			return total, errors.Join(err, werr)
		}
	}
}

// Sync commits the current log file to stable storage (fsync).
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("crilog: sync %s: %w", w.path, os.ErrClosed)
	}
	return w.f.Sync()
}

// Close closes the log file. Later writes fail with os.ErrClosed; closing
// again is a no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	w.b.reset()
	w.b.free()
	return err
}

// Reopen continues the log in a file opened anew at its path, for a log
// whose file (or folder) was removed and made again under the Writer; the
// old file is closed. Rotation settings stay. A closed Writer gives an
// error wrapping os.ErrClosed.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("crilog: reopen %s: %w", w.path, os.ErrClosed)
	}
	f, err := openLogFile(w.path, os.O_RDWR)
	if err != nil {
		return fmt.Errorf("crilog: reopen: %w", err)
	}
	size, err := dropTornTail(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("crilog: reopen %s: %w", w.path, err)
	}
	old := w.f
	w.f, w.size = f, size
	return old.Close()
}
