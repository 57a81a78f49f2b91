package crilog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// chunk is one WriteStream call of a test.
type chunk struct {
	s Stream
	p string
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// logPath returns a fresh log path in a temporary directory.
func logPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "ctr.log")
}

// writeChunks writes the chunks one second apart, starting at t0, and
// returns the bytes expected per stream.
func writeChunks(t testing.TB, path string, opts Options, chunks []chunk) [2][]byte {
	t.Helper()
	w, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var want [2][]byte
	for i, c := range chunks {
		if err := w.WriteStream(c.s, t0.Add(time.Duration(i)*time.Second), []byte(c.p)); err != nil {
			t.Fatal(err)
		}
		want[streamIndex(c.s)] = append(want[streamIndex(c.s)], c.p...)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// decodeAll decodes every file of the log with Decoder and returns the
// bytes per stream and the entries.
func decodeAll(t testing.TB, path string) ([2][]byte, []Entry) {
	t.Helper()
	names, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var got [2][]byte
	var entries []Entry
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		d := NewDecoder(bytes.NewReader(data))
		for {
			e, err := d.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			i := streamIndex(e.Stream)
			got[i] = append(got[i], e.Text...)
			if !e.Partial {
				got[i] = append(got[i], '\n')
			}
			e.Text = bytes.Clone(e.Text)
			entries = append(entries, e)
		}
	}
	return got, entries
}

// dump runs Dump and returns what it wrote per stream.
func dump(t testing.TB, path string, opts ReadOptions) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := Dump(path, opts, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until cond holds or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
