package crilog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"2024-05-01T12:00:00.123456789Z stdout F hello\n",
		"2024-05-01T12:00:00Z stderr P part",
		"2024-05-01T14:00:00+02:00 stdout F \x00\r",
		"2024-05-01T12:00:00.5-00:30 stdout F ",
		"0000-01-01T00:00:00+01:00 stdout F x",
		"9999-12-31T23:59:59.999999999-23:59 stdout F x",
		"2024-02-29T12:00:00Z stdout F a\nb",
		"garbage",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "crilog: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if i := bytes.IndexByte(line, '\n'); i >= 0 && i != len(line)-1 {
			t.Fatalf("accepted a line with an inner newline: %q", line)
		}
		if e.Time.Location() != time.UTC || bytes.IndexByte(e.Text, '\n') >= 0 {
			t.Fatalf("bad entry %+v", e)
		}
		// What parses can be written back the way Writer writes it and
		// parses to the same entry.
		out := appendHeader(nil, e.Time, e.Stream)
		if e.Partial {
			out[len(out)-2] = 'P'
		}
		out = append(append(out, e.Text...), '\n')
		e2, err := ParseLine(out)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", out, err)
		}
		if !e2.Time.Equal(e.Time) || e2.Stream != e.Stream || e2.Partial != e.Partial || !bytes.Equal(e2.Text, e.Text) {
			t.Fatalf("re-encoded %q parses to %+v, not %+v", out, e2, e)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	// Seeds stay small (large ones make the fuzzer's minimization crawl);
	// repeat makes long lines out of them.
	f.Add([]byte("hello\nworld"), uint16(0), uint16(3), uint64(0b1010))
	f.Add([]byte("\n\n\r\n\x00"), uint16(0), uint16(1), uint64(0xffff))
	f.Add([]byte(""), uint16(0), uint16(0), uint64(0))
	f.Add([]byte("long line without newline "), uint16(1500), uint16(20000), uint64(1))
	f.Add([]byte("0123456789abcdef"), uint16(1023), uint16(0), uint64(2))
	f.Add([]byte("0123456789abcde\n"), uint16(2100), uint16(16385), uint64(0b110))
	f.Fuzz(func(t *testing.T, data []byte, repeat, size uint16, mask uint64) {
		// Keep each run fast: at most 64 KiB in at most 256 writes.
		if len(data) > 0 {
			data = bytes.Repeat(data, min(1+int(repeat), max(1, 64<<10/len(data))))
		}
		size = max(size, uint16(min(len(data)/256, 1<<16-1)))
		// Cut data into writes of size bytes (all of it for 0), alternating
		// streams as the bits of mask say.
		path := logPath(t)
		w, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var want [2][]byte
		for k := 0; len(data) > 0; k++ {
			n := len(data)
			if size > 0 {
				n = min(n, int(size))
			}
			s := Stdout
			if mask>>(k%64)&1 == 1 {
				s = Stderr
			}
			if err := w.WriteStream(s, t0, data[:n]); err != nil {
				t.Fatal(err)
			}
			want[streamIndex(s)] = append(want[streamIndex(s)], data[:n]...)
			data = data[n:]
		}
		w.Close()
		got, entries := decodeAll(t, path)
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("stream %d: decoded %q, want %q", i, clip(got[i]), clip(want[i]))
			}
		}
		for _, e := range entries {
			if len(e.Text) > maxText {
				t.Fatalf("entry of %d bytes", len(e.Text))
			}
		}
		out, errOut := dump(t, path, ReadOptions{Tail: -1})
		if out != string(want[0]) || errOut != string(want[1]) {
			t.Fatal("Dump differs from the written bytes")
		}
	})
}
