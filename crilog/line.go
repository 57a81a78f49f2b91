package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Stream names the container output stream an entry belongs to.
type Stream string

// The two streams a container writes.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

const (
	// maxText is the most text bytes one entry carries; longer output
	// lines are cut into P entries of this size.
	maxText = 16 * 1024
	// maxHeader is the longest header the Writer produces:
	// a timestamp of up to 35 bytes (NumericZone), " stdout F ".
	maxHeader = len("2006-01-02T15:04:05.999999999+00:00") + len(" stdout F ")
	// maxEntry is the longest line the Writer produces, newline included.
	// A rotated file exceeds Options.MaxSize only if MaxSize < maxEntry.
	maxEntry = maxHeader + maxText + 1
	// maxLineLen bounds the lines the readers accept, so that a corrupt
	// file without newlines cannot make them buffer without limit.
	maxLineLen = 1 << 20
)

// Entry is one decoded log line.
type Entry struct {
	// Time is when the bytes were read from the container, in UTC.
	Time time.Time
	// Stream is the stream the bytes were written to.
	Stream Stream
	// Partial is true for a P entry: no newline followed Text in the
	// original output.
	Partial bool
	// Text is the output without any newline. It aliases the parsed line.
	Text []byte
}

// ParseLine parses one log line, with or without its trailing '\n'. It is
// strict: the timestamp must be RFC 3339 with an optional fraction of up to
// nine digits and a 'Z' or ±hh:mm zone (other runtimes write local offsets;
// the result is always in UTC), the stream must be stdout or stderr, the
// tag must be P or F followed by a space, and the line must hold no other
// '\n'. The returned Text aliases line. The error says what is wrong.
func ParseLine(line []byte) (Entry, error) {
	e, err := parseLine(line)
	if err != nil {
		return Entry{}, fmt.Errorf("crilog: %w", err)
	}
	return e, nil
}

// parseLine is ParseLine without the package prefix on errors.
func parseLine(line []byte) (Entry, error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		return Entry{}, errors.New("newline inside a log line")
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return Entry{}, fmt.Errorf("no space after the timestamp in %q", clip(line))
	}
	t, err := parseTime(line[:sp])
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Time: t}
	rest := line[sp+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")):
		e.Stream = Stdout
	case bytes.HasPrefix(rest, []byte("stderr ")):
		e.Stream = Stderr
	default:
		return Entry{}, fmt.Errorf("stream is not \"stdout \" or \"stderr \" in %q", clip(rest))
	}
	rest = rest[len("stdout "):]
	if len(rest) < 2 || (rest[0] != 'P' && rest[0] != 'F') || rest[1] != ' ' {
		return Entry{}, fmt.Errorf("tag is not \"P \" or \"F \" in %q", clip(rest))
	}
	e.Partial = rest[0] == 'P'
	e.Text = rest[2:]
	return e, nil
}

// parseTime parses a strict RFC 3339 timestamp and returns it in UTC.
func parseTime(b []byte) (time.Time, error) {
	if !timeShapeOK(b) {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339 (2006-01-02T15:04:05.999999999Z07:00)", clip(b))
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %v", clip(b), err)
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("timestamp %q is outside years 0000-9999 in UTC", clip(b))
	}
	return t, nil
}

// timeShapeOK checks the exact characters of an RFC 3339 timestamp;
// time.Parse then checks the ranges of the fields.
func timeShapeOK(b []byte) bool {
	const shape = "0000-00-00T00:00:00"
	if len(b) <= len(shape) {
		return false
	}
	for i := 0; i < len(shape); i++ {
		if shape[i] == '0' && !isDigit(b[i]) || shape[i] != '0' && b[i] != shape[i] {
			return false
		}
	}
	rest := b[len(shape):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		return isDigit(rest[1]) && isDigit(rest[2]) && isDigit(rest[4]) && isDigit(rest[5]) &&
			(rest[1]-'0')*10+rest[2]-'0' <= 23 && rest[4] <= '5'
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// TimeLayout is the timestamp layout the Writer uses: RFC 3339 in UTC with
// exactly nine fraction digits, so every header has the same width.
// time.RFC3339Nano trims trailing zeros, and podman's k8s-file reader
// (libpod/logs, layout "2006-01-02T15:04:05.000000000Z07:00") rejects such
// lines; the readers here accept both forms.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// TimeLayoutOffset is TimeLayout with the zone always written as an
// offset ("+00:00" for UTC), as conmon writes it; see Options.NumericZone.
const TimeLayoutOffset = "2006-01-02T15:04:05.000000000-07:00"

// appendHeader appends "<time> <stream> F " to dst; the tag byte is at
// len(result)-2 so that callers can switch it to 'P'.
func appendHeader(dst []byte, t time.Time, s Stream) []byte {
	return appendHeaderLayout(dst, t, s, TimeLayout)
}

// appendHeaderLayout is appendHeader with the time layout given.
func appendHeaderLayout(dst []byte, t time.Time, s Stream, layout string) []byte {
	dst = t.UTC().AppendFormat(dst, layout)
	dst = append(dst, ' ')
	dst = append(dst, s...)
	return append(dst, " F "...)
}

// streamIndex maps Stdout to 0 and Stderr to 1.
func streamIndex(s Stream) int {
	if s == Stderr {
		return 1
	}
	return 0
}
