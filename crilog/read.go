package crilog

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// ReadOptions selects and decorates the output of Dump and Follow, like the
// options of `docker logs`.
type ReadOptions struct {
	// Tail limits the output to the last Tail lines present when reading
	// starts, counting both streams; a line is a run of one stream's entries
	// ending with an F entry (a stream's unterminated last run counts too).
	// Negative means all lines; 0 means none (Follow then shows only new
	// output), as with docker logs --tail 0.
	Tail int
	// Since, if not zero, drops lines whose first entry is older than
	// Since. It applies after Tail, as in docker logs: --tail 10 --since X
	// shows those of the last 10 lines that are not older than X.
	Since time.Time
	// Timestamps prefixes each output line with the time of its first
	// entry and a space, in the fixed-width form docker logs --timestamps
	// prints: RFC 3339 in UTC with nine fraction digits,
	// 2006-01-02T15:04:05.000000000Z.
	Timestamps bool
}

// stampLayout is the Timestamps prefix format.
const stampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Dump writes the decoded output of the log at path, all of its files
// oldest first, to stdout and stderr by stream (a nil writer discards its
// stream). Writes alternate between the two writers in log order, so
// passing the same writer twice interleaves the streams correctly. An
// incomplete last line (being written, or torn by a crash) is ignored; a
// line that does not parse stops Dump with an error naming the file and
// offset. If the log does not exist the error wraps fs.ErrNotExist.
func Dump(path string, opts ReadOptions, stdout, stderr io.Writer) error {
	files, err := openSnapshot(path)
	if err != nil {
		return fmt.Errorf("crilog: %w", err)
	}
	defer closeFiles(files)
	if len(files) == 0 {
		return fmt.Errorf("crilog: %w", &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist})
	}
	cut, err := findTail(files, opts.Tail)
	if err != nil {
		return err
	}
	k := newSink(opts, stdout, stderr)
	for fi := cut.start.file; fi < len(files); fi++ {
		if err = k.drainFile(files[fi], fi, &cut); err != nil {
			break
		}
	}
	if ferr := k.flush(); err == nil {
		err = ferr
	}
	return err
}

// sink turns entries into output bytes, applying Since and Timestamps.
type sink struct {
	out    [2]io.Writer
	since  time.Time
	stamps bool
	buf    []byte
	cur    int     // stream whose bytes are in buf
	mid    [2]bool // the stream's last entry was partial
	skip   [2]bool // the stream's current line is older than since
}

func newSink(opts ReadOptions, stdout, stderr io.Writer) *sink {
	k := &sink{out: [2]io.Writer{stdout, stderr}, since: opts.Since, stamps: opts.Timestamps}
	for i, w := range k.out {
		if w == nil {
			k.out[i] = io.Discard
		}
	}
	return k
}

// add outputs one entry.
func (k *sink) add(e Entry) error {
	i := streamIndex(e.Stream)
	start := !k.mid[i]
	k.mid[i] = e.Partial
	if start {
		k.skip[i] = !k.since.IsZero() && e.Time.Before(k.since)
	}
	if k.skip[i] {
		return nil
	}
	if i != k.cur {
		if err := k.flush(); err != nil {
			return err
		}
		k.cur = i
	}
	if start && k.stamps {
		k.buf = e.Time.UTC().AppendFormat(k.buf, stampLayout)
		k.buf = append(k.buf, ' ')
	}
	k.buf = append(k.buf, e.Text...)
	if !e.Partial {
		k.buf = append(k.buf, '\n')
	}
	if len(k.buf) >= 64<<10 {
		return k.flush()
	}
	return nil
}

// flush writes the buffered bytes to their stream's writer.
func (k *sink) flush() error {
	if len(k.buf) == 0 {
		return nil
	}
	_, err := k.out[k.cur].Write(k.buf)
	k.buf = k.buf[:0]
	return err
}

// drainFile outputs snapshot file fi from where cut says to its end.
func (k *sink) drainFile(f *os.File, fi int, cut *tailCut) error {
	var off int64
	if fi == cut.start.file {
		off = cut.start.off
	}
	lr, err := newLineReader(f, off)
	if err != nil {
		return err
	}
	return k.drain(lr, fi, cut)
}

// drain outputs the complete lines lr has up to the current end of its
// file; it can be called again when the file has grown.
func (k *sink) drain(lr *lineReader, fi int, cut *tailCut) error {
	for {
		line, off, ok, err := lr.next()
		if err != nil || !ok {
			return err
		}
		e, err := parseLine(line)
		if err != nil {
			return fmt.Errorf("crilog: %s offset %d: %w", lr.f.Name(), off, err)
		}
		if cut.excludes(streamIndex(e.Stream), pos{fi, off}) {
			continue
		}
		if err := k.add(e); err != nil {
			return err
		}
	}
}

// lineReader reads the complete lines of a file that may still be growing.
type lineReader struct {
	f    *os.File
	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	off  int64 // file offset of buf[r]
	seen int   // buf[r:r+seen] holds no '\n'
}

// newLineReader reads f from offset off.
func newLineReader(f *os.File, off int64) (*lineReader, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("crilog: %w", err)
	}
	return &lineReader{f: f, buf: make([]byte, 64<<10), off: off}, nil
}

// next returns the next line without its '\n' and its offset. ok is false
// when no complete line is available (yet). The line is valid until the
// next call.
func (lr *lineReader) next() (line []byte, off int64, ok bool, err error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.r+lr.seen:lr.w], '\n'); i >= 0 {
			i += lr.seen
			line, off = lr.buf[lr.r:lr.r+i], lr.off
			lr.r += i + 1
			lr.off += int64(i + 1)
			lr.seen = 0
			return line, off, true, nil
		}
		lr.seen = lr.w - lr.r
		if more, err := lr.fill(); err != nil || !more {
			return nil, 0, false, err
		}
	}
}

// fill reads more of the file; it reports whether it got any bytes.
func (lr *lineReader) fill() (bool, error) {
	if lr.r > 0 {
		lr.w = copy(lr.buf, lr.buf[lr.r:lr.w])
		lr.r = 0
	}
	if lr.w == len(lr.buf) {
		if len(lr.buf) >= maxLineLen {
			return false, fmt.Errorf("crilog: %s offset %d: line longer than %d bytes", lr.f.Name(), lr.off, maxLineLen)
		}
		lr.buf = append(lr.buf, make([]byte, len(lr.buf))...)
	}
	n, err := lr.f.Read(lr.buf[lr.w:])
	lr.w += n
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("crilog: %w", err)
	}
	return n > 0, nil
}
