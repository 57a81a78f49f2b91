package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTail(t *testing.T) {
	// Entries: out F a, out F b, err F e1, out P c, err F e2, out F d.
	chunks := []chunk{{Stdout, "a\nb\n"}, {Stderr, "e1\n"}, {Stdout, "c"}, {Stderr, "e2\n"}, {Stdout, "d\n"}}
	tests := []struct {
		tail          int
		stdout, stder string
	}{
		{-1, "a\nb\ncd\n", "e1\ne2\n"},
		{0, "", ""},
		{1, "cd\n", ""},
		{2, "cd\n", "e2\n"},
		{3, "cd\n", "e1\ne2\n"},
		{4, "b\ncd\n", "e1\ne2\n"},
		{5, "a\nb\ncd\n", "e1\ne2\n"},
		{100, "a\nb\ncd\n", "e1\ne2\n"},
	}
	path := logPath(t)
	writeChunks(t, path, Options{}, chunks)
	for _, tt := range tests {
		out, errOut := dump(t, path, ReadOptions{Tail: tt.tail})
		if out != tt.stdout || errOut != tt.stder {
			t.Errorf("Tail %d: got %q, %q; want %q, %q", tt.tail, out, errOut, tt.stdout, tt.stder)
		}
	}
}

func TestTailUnterminatedLastLine(t *testing.T) {
	path := logPath(t)
	writeChunks(t, path, Options{}, []chunk{{Stdout, "x\ny\nprompt> "}, {Stderr, "oops\n"}})
	for tail, want := range map[int]string{1: "", 2: "prompt> ", 3: "y\nprompt> "} {
		if out, _ := dump(t, path, ReadOptions{Tail: tail}); out != want {
			t.Errorf("Tail %d: stdout %q, want %q", tail, out, want)
		}
	}
}

// refTail returns the indexes of the entries that the last n lines consist
// of, computed forwards: lines are ranked by the index of their last entry.
func refTail(entries []Entry, n int) []int {
	type line struct{ idx []int }
	var lines []line
	var open [2][]int
	for k, e := range entries {
		i := streamIndex(e.Stream)
		open[i] = append(open[i], k)
		if !e.Partial {
			lines = append(lines, line{open[i]})
			open[i] = nil
		}
	}
	for _, o := range open {
		if o != nil {
			lines = append(lines, line{o})
		}
	}
	slices.SortFunc(lines, func(a, b line) int { return a.idx[len(a.idx)-1] - b.idx[len(b.idx)-1] })
	if n >= 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	var keep []int
	for _, l := range lines {
		keep = append(keep, l.idx...)
	}
	slices.Sort(keep)
	return keep
}

func TestTailMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		path := logPath(t)
		chunks := randomChunks(rng, 80, 30)
		writeChunks(t, path, Options{MaxSize: int64(200 + rng.IntN(2000)), MaxFiles: 1000}, chunks)
		_, entries := decodeAll(t, path)
		for _, n := range []int{0, 1, 2, 3, 5, 8, 13, 40, 1000, -1} {
			var want [2]string
			var wantBoth string
			for _, k := range refTail(entries, n) {
				e := entries[k]
				text := string(e.Text)
				if !e.Partial {
					text += "\n"
				}
				want[streamIndex(e.Stream)] += text
				wantBoth += text
			}
			out, errOut := dump(t, path, ReadOptions{Tail: n})
			var both bytes.Buffer
			if err := Dump(path, ReadOptions{Tail: n}, &both, &both); err != nil {
				t.Fatal(err)
			}
			if out != want[0] || errOut != want[1] || both.String() != wantBoth {
				t.Fatalf("round %d, Tail %d: got %q, %q (combined %q); want %q, %q (%q)",
					round, n, out, errOut, both.String(), want[0], want[1], wantBoth)
			}
		}
	}
}

// TestTailReadsBackwards shows that Tail does not decode the whole log:
// lines that do not parse at its start do not matter.
func TestTailReadsBackwards(t *testing.T) {
	path := logPath(t)
	junk := strings.Repeat("this is not a CRI log line\n", 100000)
	if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
		t.Fatal(err)
	}
	writeChunks(t, path, Options{}, []chunk{{Stdout, "one\ntwo\nthree\n"}})
	if out, _ := dump(t, path, ReadOptions{Tail: 2}); out != "two\nthree\n" {
		t.Errorf("Tail 2 = %q", out)
	}
	err := Dump(path, ReadOptions{Tail: -1}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "offset 0:") {
		t.Errorf("full Dump of a corrupt log: %v, want an error at offset 0", err)
	}
}

func TestSince(t *testing.T) {
	path := logPath(t)
	// chunk i is written at t0 + i seconds.
	writeChunks(t, path, Options{}, []chunk{
		{Stdout, "zero\n"}, {Stdout, "one "}, {Stderr, "two\n"}, {Stdout, "continued\nthree\n"}, {Stderr, "four"},
	})
	tests := []struct {
		since         time.Time
		stdout, stder string
	}{
		{time.Time{}, "zero\none continued\nthree\n", "two\nfour"},
		{t0, "zero\none continued\nthree\n", "two\nfour"},
		{t0.Add(time.Second), "one continued\nthree\n", "two\nfour"},
		{t0.Add(1500 * time.Millisecond), "three\n", "two\nfour"},
		{t0.Add(3 * time.Second), "three\n", "four"},
		{t0.Add(time.Hour), "", ""},
	}
	for _, tt := range tests {
		out, errOut := dump(t, path, ReadOptions{Tail: -1, Since: tt.since})
		if out != tt.stdout || errOut != tt.stder {
			t.Errorf("Since %v: got %q, %q; want %q, %q", tt.since, out, errOut, tt.stdout, tt.stder)
		}
	}
	// Tail first, then Since, as docker logs does.
	if out, errOut := dump(t, path, ReadOptions{Tail: 3, Since: t0.Add(3 * time.Second)}); out != "three\n" || errOut != "four" {
		t.Errorf("Tail 3 Since +3s: %q, %q", out, errOut)
	}
}

func TestTimestamps(t *testing.T) {
	path := logPath(t)
	writeChunks(t, path, Options{}, []chunk{{Stdout, "a\nb"}, {Stderr, "e\n"}, {Stdout, "c\n\n"}})
	out, errOut := dump(t, path, ReadOptions{Tail: -1, Timestamps: true})
	wantOut := "2024-05-01T12:00:00.000000000Z a\n" +
		"2024-05-01T12:00:00.000000000Z bc\n" +
		"2024-05-01T12:00:02.000000000Z \n"
	if out != wantOut || errOut != "2024-05-01T12:00:01.000000000Z e\n" {
		t.Errorf("got %q, %q", out, errOut)
	}
	out, _ = dump(t, path, ReadOptions{Tail: 1, Timestamps: true})
	if out != "2024-05-01T12:00:02.000000000Z \n" {
		t.Errorf("Tail 1: %q", out)
	}
}

func TestDumpInterleavesOneWriter(t *testing.T) {
	path := logPath(t)
	var chunks []chunk
	var want strings.Builder
	for i := range 1000 {
		s := []Stream{Stdout, Stderr}[i%2]
		p := fmt.Sprintf("%s %d\n", s, i)
		chunks = append(chunks, chunk{s, p})
		want.WriteString(p)
	}
	writeChunks(t, path, Options{MaxSize: 4096, MaxFiles: 100}, chunks)
	var both bytes.Buffer
	if err := Dump(path, ReadOptions{Tail: -1}, &both, &both); err != nil || both.String() != want.String() {
		t.Errorf("Dump to one writer: %v, output matches: %v", err, both.String() == want.String())
	}
}

func TestDumpMissingLog(t *testing.T) {
	err := Dump(logPath(t), ReadOptions{Tail: -1}, nil, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dump of a missing log: %v, want fs.ErrNotExist", err)
	}
}

func TestDumpIgnoresIncompleteLastLine(t *testing.T) {
	path := logPath(t)
	writeChunks(t, path, Options{}, []chunk{{Stdout, "done\n"}})
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("2024-05-01T12:00:09Z stdout F being wri")
	f.Close()
	for _, tail := range []int{-1, 1} {
		if out, _ := dump(t, path, ReadOptions{Tail: tail}); out != "done\n" {
			t.Errorf("Tail %d: %q", tail, out)
		}
	}
}
