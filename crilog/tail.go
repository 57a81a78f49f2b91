package crilog

import (
	"bytes"
	"fmt"
	"os"
)

// pos is a place in a snapshot of the log: a file (index, oldest first)
// and a byte offset in it.
type pos struct {
	file int
	off  int64
}

// after reports whether p comes after q.
func (p pos) after(q pos) bool {
	return p.file > q.file || p.file == q.file && p.off > q.off
}

// tailCut says which entries of a snapshot a Tail option selects: reading
// starts at start, and the entries of stream i at or before bound[i] (if
// has[i]) belong to older lines and are skipped.
type tailCut struct {
	start pos
	bound [2]pos
	has   [2]bool
}

// excludes reports whether the entry of stream i at p is cut off.
func (c *tailCut) excludes(i int, p pos) bool {
	return c.has[i] && !p.after(c.bound[i])
}

// tailScan walks entries backwards and decides the tailCut for the last n
// lines. Lines are counted at their last entry: an F entry, or the first
// entry met of a stream whose output does not end in a newline. Lines
// ending after the n-th line's end are taken whole, whatever their stream.
type tailScan struct {
	n, count   int
	open, done [2]bool
	cut        tailCut
}

// step takes the entry of stream s with tag partial at p, which comes
// before all entries stepped so far; it returns true when the cut is
// decided.
func (t *tailScan) step(s Stream, partial bool, p pos) bool {
	i := streamIndex(s)
	if t.done[i] {
		return false
	}
	if !partial || !t.open[i] {
		if t.count == t.n {
			t.done[i] = true
			t.cut.bound[i], t.cut.has[i] = p, true
			return (t.done[0] || !t.open[0]) && (t.done[1] || !t.open[1])
		}
		t.count++
		t.open[i] = true
	}
	t.cut.start = p
	return false
}

// findTail returns the cut that selects the last n lines of the snapshot
// files, reading them backwards; n < 0 selects everything.
func findTail(files []*os.File, n int) (tailCut, error) {
	if n < 0 || len(files) == 0 {
		return tailCut{}, nil
	}
	t := tailScan{n: n}
	for fi := len(files) - 1; fi >= 0; fi-- {
		b, err := newBackScanner(files[fi])
		if err != nil {
			return tailCut{}, fmt.Errorf("crilog: %s: %w", files[fi].Name(), err)
		}
		if fi == len(files)-1 {
			t.cut.start = pos{fi, b.end()}
		}
		for {
			line, off, ok, err := b.prev()
			if err != nil {
				return tailCut{}, fmt.Errorf("crilog: %s: %w", files[fi].Name(), err)
			}
			if !ok {
				break
			}
			e, err := parseLine(line)
			if err != nil {
				return tailCut{}, fmt.Errorf("crilog: %s offset %d: %w", files[fi].Name(), off, err)
			}
			if t.step(e.Stream, e.Partial, pos{fi, off}) {
				return t.cut, nil
			}
		}
	}
	return t.cut, nil
}

// backBlock is how much backScanner reads at a time.
const backBlock = 64 << 10

// backScanner returns the complete lines of a file from last to first.
// A final fragment without '\n' is ignored.
type backScanner struct {
	f    *os.File
	base int64  // file offset of data[0]
	data []byte // unreturned bytes; ends with '\n' unless empty
}

// newBackScanner positions a backScanner after the last '\n' of f.
func newBackScanner(f *os.File) (*backScanner, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := &backScanner{f: f, base: fi.Size()}
	for b.base > 0 {
		n := min(int64(backBlock), b.base)
		blk := make([]byte, n)
		if _, err := f.ReadAt(blk, b.base-n); err != nil {
			return nil, err
		}
		b.base -= n
		if i := bytes.LastIndexByte(blk, '\n'); i >= 0 {
			b.data = blk[:i+1]
			return b, nil
		}
	}
	return b, nil
}

// end returns the offset just after the last complete line.
func (b *backScanner) end() int64 { return b.base + int64(len(b.data)) }

// prev returns the previous line without its '\n' and its offset; ok is
// false at the start of the file. The line is valid until the next call.
func (b *backScanner) prev() (line []byte, off int64, ok bool, err error) {
	for len(b.data) > 0 {
		body := b.data[:len(b.data)-1]
		if j := bytes.LastIndexByte(body, '\n'); j >= 0 {
			b.data = b.data[:j+1]
			return body[j+1:], b.base + int64(j+1), true, nil
		}
		if b.base == 0 {
			b.data = b.data[:0]
			return body, 0, true, nil
		}
		if err := b.fill(); err != nil {
			return nil, 0, false, err
		}
	}
	return nil, 0, false, nil
}

// fill prepends the block of the file before data.
func (b *backScanner) fill() error {
	if len(b.data) > maxLineLen+1 {
		return fmt.Errorf("line before offset %d longer than %d bytes", b.end(), maxLineLen)
	}
	n := min(int64(backBlock), b.base)
	nd := make([]byte, int(n)+len(b.data))
	if _, err := b.f.ReadAt(nd[:n], b.base-n); err != nil {
		return err
	}
	copy(nd[n:], b.data)
	b.data, b.base = nd, b.base-n
	return nil
}
