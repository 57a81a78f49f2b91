package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 2600) // 41600 bytes
	tests := []struct {
		name   string
		chunks []chunk
	}{
		{"empty", nil},
		{"empty write", []chunk{{Stdout, ""}}},
		{"one line", []chunk{{Stdout, "hello\n"}}},
		{"no trailing newline", []chunk{{Stdout, "hello"}}},
		{"only newlines", []chunk{{Stdout, "\n\n\n"}}},
		{"empty lines between", []chunk{{Stdout, "a\n\nb\n\n"}}},
		{"crlf", []chunk{{Stdout, "a\r\nb\r\n\r"}}},
		{"nul and high bytes", []chunk{{Stderr, "\x00\xff\xfe x\x00\n\x00"}}},
		{"spaces", []chunk{{Stdout, "  lead\ntrail  \n \n"}}},
		{"line split across writes", []chunk{{Stdout, "hel"}, {Stdout, "lo\nwor"}, {Stdout, "ld\n"}}},
		{"text that looks like a header", []chunk{{Stdout, "2024-05-01T12:00:00Z stderr F x\n"}}},
		{"exactly 16 KiB", []chunk{{Stdout, long[:maxText] + "\n"}}},
		{"16 KiB + 1", []chunk{{Stdout, long[:maxText+1] + "\n"}}},
		{"16 KiB no newline", []chunk{{Stdout, long[:maxText]}}},
		{"long line", []chunk{{Stdout, long + "\n" + long}}},
		{"long lines of newlines", []chunk{{Stderr, strings.Repeat("\n", 3*maxText)}}},
		{"interleaved", []chunk{
			{Stdout, "out 1 "}, {Stderr, "err 1\nerr 2 "}, {Stdout, "still out 1\n"},
			{Stderr, "\n"}, {Stdout, long}, {Stderr, "e"}, {Stdout, "\nend"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := logPath(t)
			want := writeChunks(t, path, Options{}, tt.chunks)
			got, entries := decodeAll(t, path)
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("stream %d decoded %q, want %q", i, clip(got[i]), clip(want[i]))
				}
			}
			for _, e := range entries {
				if len(e.Text) > maxText {
					t.Errorf("entry with %d bytes of text", len(e.Text))
				}
			}
			out, errOut := dump(t, path, ReadOptions{Tail: -1})
			if out != string(want[0]) || errOut != string(want[1]) {
				t.Errorf("Dump gave %q, %q; want %q, %q", clip([]byte(out)), clip([]byte(errOut)), clip(want[0]), clip(want[1]))
			}
		})
	}
}

func TestWriteStreamEntries(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 1, 14, 0, 0, 500, time.FixedZone("x", 7200))
	if err := w.WriteStream(Stderr, ts, []byte("a\nb")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	want := "2024-05-01T12:00:00.000000500Z stderr F a\n2024-05-01T12:00:00.000000500Z stderr P b\n"
	if string(data) != want {
		t.Fatalf("file holds %q, want %q", data, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestWriteStreamErrors(t *testing.T) {
	w, err := Open(logPath(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteStream("stdin", t0, []byte("x")); err == nil {
		t.Error("unknown stream accepted")
	}
	if err := w.WriteStream(Stdout, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), []byte("x")); err == nil {
		t.Error("year 10000 accepted")
	}
	if err := w.Sync(); err != nil {
		t.Error(err)
	}
	if err := w.Close(); err != nil {
		t.Error(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"WriteStream": w.WriteStream(Stdout, t0, []byte("x")),
		"Sync":        w.Sync(),
	} {
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s after Close: %v, want os.ErrClosed", name, err)
		}
	}
}

func TestOpenAppendsAndDropsTornTail(t *testing.T) {
	path := logPath(t)
	writeChunks(t, path, Options{}, []chunk{{Stdout, "one\n"}})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("2024-05-01T12:00:05Z stdout F tor") // a crash mid-write
	f.Close()
	writeChunks(t, path, Options{}, []chunk{{Stdout, "two\n"}})
	if out, _ := dump(t, path, ReadOptions{Tail: -1}); out != "one\ntwo\n" {
		t.Fatalf("after reopen: %q", out)
	}
}

func TestConcurrentWriters(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{MaxSize: 64 << 10, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	var want [2]bytes.Buffer
	var wg sync.WaitGroup
	for i, s := range []Stream{Stdout, Stderr} {
		wg.Go(func() {
			for j := range 2000 {
				p := fmt.Sprintf("%s %d%s", s, j, strings.Repeat(".", j%50))
				if j%3 != 0 {
					p += "\n"
				}
				want[i].WriteString(p)
				if err := w.WriteStream(s, time.Now(), []byte(p)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	w.Close()
	got, _ := decodeAll(t, path)
	for i := range got {
		if !bytes.Equal(got[i], want[i].Bytes()) {
			t.Errorf("stream %d: decoded %d bytes, want %d", i, len(got[i]), want[i].Len())
		}
	}
}

// slowReader returns its data in reads of at most n bytes, then err.
type slowReader struct {
	data []byte
	n    int
	err  error
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestCopy(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := []byte(strings.Repeat("line of output\n", 100000) + "no newline")
	var teed bytes.Buffer
	n, err := w.Copy(Stderr, &slowReader{data: in, n: 100 << 10, err: io.EOF}, func(s Stream, p []byte) {
		if s != Stderr {
			t.Errorf("tee got stream %q", s)
		}
		teed.Write(p)
	})
	if err != nil || n != int64(len(in)) {
		t.Fatalf("Copy = %d, %v; want %d, nil", n, err, len(in))
	}
	w.Close()
	if !bytes.Equal(teed.Bytes(), in) {
		t.Error("tee did not see the exact bytes")
	}
	got, _ := decodeAll(t, path)
	if !bytes.Equal(got[1], in) || len(got[0]) != 0 {
		t.Errorf("decoded %d stderr and %d stdout bytes, want %d and 0", len(got[1]), len(got[0]), len(in))
	}
}

func TestCopyErrors(t *testing.T) {
	w, err := Open(logPath(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	readErr := errors.New("read failed")
	if _, err := w.Copy(Stdout, &slowReader{data: []byte("x"), n: 1, err: readErr}, nil); !errors.Is(err, readErr) {
		t.Errorf("read error: got %v", err)
	}
	w.Close()
	// After a write error Copy still drains its reader, so that the
	// container never blocks on a full pipe.
	teed := 0
	n, err := w.Copy(Stdout, &slowReader{data: make([]byte, 1000), n: 10, err: io.EOF}, func(_ Stream, p []byte) { teed += len(p) })
	if n != 1000 || teed != 1000 || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Copy to a closed Writer = %d (tee %d), %v; want 1000 (1000), os.ErrClosed", n, teed, err)
	}
}

func TestWriteErrorIsReported(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	w, err := Open("/dev/full", Options{})
	if err != nil {
		t.Skip(err)
	}
	defer w.Close()
	if err := w.WriteStream(Stdout, t0, []byte("x\n")); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Errorf("write to /dev/full: %v", err)
	}
	n, err := w.Copy(Stdout, &slowReader{data: make([]byte, 5000), n: 1000, err: io.EOF}, nil)
	if n != 5000 || err == nil {
		t.Errorf("Copy to /dev/full = %d, %v; want 5000 and an error", n, err)
	}
}

func TestRotationFailureKeepsWriting(t *testing.T) {
	path := logPath(t)
	if err := os.MkdirAll(path+".1/blocker", 0o700); err != nil { // path cannot be renamed to path.1
		t.Fatal(err)
	}
	w, err := Open(path, Options{MaxSize: 100, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("z", 70) + "\n"
	for i := range 3 {
		err := w.WriteStream(Stdout, t0, []byte(line+line))
		if err == nil || !strings.Contains(err.Error(), "rotate") {
			t.Errorf("write %d: %v, want a rotation error", i, err)
		}
	}
	w.Close()
	if out, _ := dump(t, path, ReadOptions{Tail: -1}); out != strings.Repeat(line, 6) {
		t.Errorf("log holds %d bytes of output, want %d", len(out), 6*len(line))
	}
	if _, err := os.Stat(path + ".next"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestAdvance(t *testing.T) {
	var b batch
	data := []byte("0123456789")
	b.vec(data[:3])
	b.vec(data[3:4])
	b.vec(data[4:])
	iov := advance(b.iov, 5)
	if len(iov) != 1 || iov[0].Len != 5 || *iov[0].Base != '5' {
		t.Fatalf("advance by 5 left %d vectors, first of %d bytes", len(iov), iov[0].Len)
	}
	if iov = advance(iov, 5); len(iov) != 0 {
		t.Fatalf("advance to the end left %d vectors", len(iov))
	}
}

func TestReopen(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteStream(Stdout, t0, []byte("lost with the file\n"))
	os.Remove(path)
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.WriteStream(Stdout, t0, []byte("after\n"))
	w.Close()
	if out, _ := dump(t, path, ReadOptions{Tail: -1}); out != "after\n" {
		t.Errorf("after Reopen the log holds %q", out)
	}
	if err := w.Reopen(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Reopen after Close: %v", err)
	}
}

// TestWriteStreamLargeBatches writes single calls big enough to fill the
// stage, the vector limit and the flush size several times over.
func TestWriteStreamLargeBatches(t *testing.T) {
	short := strings.Repeat("short line\n", 300000)                     // 3.3 MB staged
	mid := strings.Repeat(strings.Repeat("m", 600)+"\n", 5000)          // 3 MB in 3 vectors each
	mixed := strings.Repeat("a\n"+strings.Repeat("b", 700)+"\nc", 3000) // alternating
	path := logPath(t)
	want := writeChunks(t, path, Options{MaxSize: 1 << 20, MaxFiles: 100}, []chunk{
		{Stdout, short}, {Stderr, mid}, {Stdout, mixed},
	})
	got, _ := decodeAll(t, path)
	if !bytes.Equal(got[0], want[0]) || !bytes.Equal(got[1], want[1]) {
		t.Errorf("decoded %d and %d bytes, want %d and %d", len(got[0]), len(got[1]), len(want[0]), len(want[1]))
	}
}

// TestTruncateAtMax: with Truncate the file is emptied when the next entry
// would pass MaxSize, as conmon does for --log-size-max, and no rotated
// file appears.
func TestTruncateAtMax(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{MaxSize: 100, Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, line := range []string{"one\n", "two\n", "three\n"} {
		if err := w.WriteStream(Stdout, ts, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if want := "2024-05-01T12:00:00.000000000Z stdout F three\n"; string(data) != want {
		t.Fatalf("file holds %q, want %q", data, want)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatalf("a rotated file exists: %v", err)
	}
}

// TestNumericZone: conmon's zone form, read back to the same instant.
func TestNumericZone(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{NumericZone: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := w.WriteStream(Stdout, ts, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	if want := "2024-05-01T12:00:00.000000000+00:00 stdout F x\n"; string(data) != want {
		t.Fatalf("file holds %q, want %q", data, want)
	}
	e, err := ParseLine(data)
	if err != nil || !e.Time.Equal(ts) {
		t.Fatalf("ParseLine: %v, %v", e.Time, err)
	}
}
