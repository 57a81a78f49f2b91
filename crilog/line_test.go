package crilog

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line    string
		time    time.Time
		stream  Stream
		partial bool
		text    string
	}{
		{"2024-05-01T12:00:00.123456789Z stdout F hello\n", t0.Add(123456789), Stdout, false, "hello"},
		{"2024-05-01T12:00:00Z stderr P part", t0, Stderr, true, "part"},
		{"2024-05-01T12:00:00.5Z stdout F \n", t0.Add(5e8), Stdout, false, ""},
		{"2024-05-01T12:00:00Z stdout F  two  spaces \r", t0, Stdout, false, " two  spaces \r"},
		{"2024-05-01T14:00:00+02:00 stdout F x\x00y", t0, Stdout, false, "x\x00y"},
		{"2024-05-01T11:30:00-00:30 stdout P F x", t0, Stdout, true, "F x"},
	}
	for _, tt := range tests {
		e, err := ParseLine([]byte(tt.line))
		if err != nil {
			t.Errorf("ParseLine(%q): %v", tt.line, err)
			continue
		}
		if !e.Time.Equal(tt.time) || e.Time.Location() != time.UTC || e.Stream != tt.stream ||
			e.Partial != tt.partial || string(e.Text) != tt.text {
			t.Errorf("ParseLine(%q) = %+v (text %q)", tt.line, e, e.Text)
		}
	}
}

func TestParseLineErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{"", "no space after the timestamp"},
		{"2024-05-01T12:00:00Z", "no space after the timestamp"},
		{"2024-05-01 12:00:00Z stdout F x", "not RFC 3339"},
		{"2024-05-01T12:00:00 stdout F x", "not RFC 3339"},
		{"2024-05-01t12:00:00Z stdout F x", "not RFC 3339"},
		{"2024-05-01T12:00:00,5Z stdout F x", "not RFC 3339"},
		{"2024-05-01T12:00:00.Z stdout F x", "not RFC 3339"},
		{"2024-05-01T12:00:00.1234567890Z stdout F x", "not RFC 3339"},
		{"2024-05-01T12:00:00+2:00 stdout F x", "not RFC 3339"},
		{"2024-05-01T12:00:00+24:00 stdout F x", "not RFC 3339"},
		{"2024-13-01T12:00:00Z stdout F x", "month out of range"},
		{"2024-02-30T12:00:00Z stdout F x", "day out of range"},
		{"0000-01-01T00:00:00+01:00 stdout F x", "outside years"},
		{"2024-05-01T12:00:00Z stdin F x", "stream is not"},
		{"2024-05-01T12:00:00Z stdout", "stream is not"},
		{"2024-05-01T12:00:00Z stdout X x", "tag is not"},
		{"2024-05-01T12:00:00Z stdout F", "tag is not"},
		{"2024-05-01T12:00:00Z stdout P:x x", "tag is not"},
		{"2024-05-01T12:00:00Z stdout F a\nb", "newline inside"},
		{"2024-05-01T12:00:00Z stdout F a\n\n", "newline inside"},
	}
	for _, tt := range tests {
		_, err := ParseLine([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "crilog: ") {
			t.Errorf("ParseLine(%q) error = %v, want one containing %q", tt.line, err, tt.want)
		}
	}
}

func TestDecoder(t *testing.T) {
	in := "2024-05-01T12:00:00Z stdout F a\n" +
		"garbage\n" +
		"2024-05-01T12:00:01Z stderr P b\n" +
		"2024-05-01T12:00:02Z stdout F c"
	d := NewDecoder(strings.NewReader(in))
	e, err := d.Next()
	if err != nil || string(e.Text) != "a" || e.Stream != Stdout {
		t.Fatalf("first: %+v, %v", e, err)
	}
	if _, err := d.Next(); err == nil || !strings.Contains(err.Error(), "line 2:") {
		t.Fatalf("garbage line: error %v, want one naming line 2", err)
	}
	if e, err := d.Next(); err != nil || string(e.Text) != "b" || !e.Partial || e.Stream != Stderr {
		t.Fatalf("after error: %+v, %v", e, err)
	}
	if _, err := d.Next(); !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "line 4:") {
		t.Fatalf("unterminated last line: %v", err)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestDecoderLongLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	in := "2024-05-01T12:00:00Z stdout F " + long + "\n" +
		"2024-05-01T12:00:00Z stdout F " + strings.Repeat("y", maxLineLen+10) + "\n" +
		"2024-05-01T12:00:00Z stderr F z\n"
	d := NewDecoder(strings.NewReader(in))
	if e, err := d.Next(); err != nil || string(e.Text) != long {
		t.Fatalf("200 KiB line: %v", err)
	}
	if _, err := d.Next(); err == nil || !strings.Contains(err.Error(), "line 2: longer than") {
		t.Fatalf("over-long line: %v", err)
	}
	if e, err := d.Next(); err != nil || !bytes.Equal(e.Text, []byte("z")) {
		t.Fatalf("line after the over-long one: %+v, %v", e, err)
	}
}

// TestHeaderFixedWidth: every header carries nine fraction digits, also
// when the time's trailing digits are zero, because podman's k8s-file
// reader accepts nothing else; the readers still take the trimmed form.
func TestHeaderFixedWidth(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"whole second", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), "2024-05-01T12:00:00.000000000Z stdout F "},
		{"trailing zeros", time.Date(2024, 5, 1, 12, 0, 0, 120000000, time.UTC), "2024-05-01T12:00:00.120000000Z stdout F "},
		{"all digits", time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC), "2024-05-01T12:00:00.123456789Z stdout F "},
		{"local zone", time.Date(2024, 5, 1, 14, 0, 0, 5, time.FixedZone("x", 7200)), "2024-05-01T12:00:00.000000005Z stdout F "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(appendHeader(nil, tc.at, Stdout))
			if got != tc.want {
				t.Fatalf("header %q, want %q", got, tc.want)
			}
			if _, err := time.Parse(TimeLayout, got[:strings.IndexByte(got, ' ')]); err != nil {
				t.Fatalf("podman's layout rejects %q: %v", got, err)
			}
			e, err := ParseLine([]byte(got + "x"))
			if err != nil || !e.Time.Equal(tc.at) {
				t.Fatalf("ParseLine(%q) = %v, %v", got, e.Time, err)
			}
		})
	}
}
