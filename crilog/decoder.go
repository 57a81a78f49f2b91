package crilog

import (
	"bufio"
	"fmt"
	"io"
)

// Decoder reads entries from one log file's bytes.
type Decoder struct {
	r    *bufio.Reader
	line []byte // a line longer than the bufio buffer
	n    int    // lines read so far
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next entry, or io.EOF after the last one. Entry.Text is
// valid only until the following call. A line that does not parse yields
// an error naming its line number; calling Next again continues with the
// following line. Input that ends without a final '\n' yields an error
// wrapping io.ErrUnexpectedEOF. Lines over 1 MiB are rejected.
func (d *Decoder) Next() (Entry, error) {
	line, err := d.readLine()
	if err != nil {
		return Entry{}, err
	}
	d.n++
	e, err := parseLine(line)
	if err != nil {
		return Entry{}, fmt.Errorf("crilog: line %d: %w", d.n, err)
	}
	return e, nil
}

// readLine returns the next line including its '\n'.
func (d *Decoder) readLine() ([]byte, error) {
	d.line = d.line[:0]
	for {
		chunk, err := d.r.ReadSlice('\n')
		switch {
		case err == nil && len(d.line) == 0:
			return chunk, nil
		case err == nil && len(d.line)+len(chunk) <= maxLineLen+1:
			d.line = append(d.line, chunk...)
			return d.line, nil
		case err == nil:
			d.n++
			return nil, fmt.Errorf("crilog: line %d: longer than %d bytes", d.n, maxLineLen)
		case err == bufio.ErrBufferFull:
			d.line = append(d.line, chunk...)
			if len(d.line) > maxLineLen {
				d.skipLine()
				d.n++
				return nil, fmt.Errorf("crilog: line %d: longer than %d bytes", d.n, maxLineLen)
			}
		case err == io.EOF && len(d.line)+len(chunk) == 0:
			return nil, io.EOF
		case err == io.EOF:
			d.n++
			return nil, fmt.Errorf("crilog: line %d: no newline at end of input: %w", d.n, io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}

// skipLine discards input up to and including the next '\n'.
func (d *Decoder) skipLine() {
	d.line = d.line[:0]
	for {
		if _, err := d.r.ReadSlice('\n'); err != bufio.ErrBufferFull {
			return
		}
	}
}
