package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// readAll drains r until io.EOF.
func readAll(t *testing.T, r *JournalReader) []Event {
	t.Helper()
	var out []Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

// TestJournalAppendRead: lines appended by many writers at once are each
// read back whole, once; a reader opened at the end sees only later
// lines; a torn last line is held back until its newline arrives.
func TestJournalAppendRead(t *testing.T) {
	root := t.TempDir()
	tail, err := OpenJournal(root, false) // no journal yet: fine
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := AppendEvent(root, Event{Type: EventStarted, ID: "c" + strconv.Itoa(w), Pid: i + 1}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	r, err := OpenJournal(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := readAll(t, r); len(got) != 400 {
		t.Fatalf("read %d events from the start, want 400", len(got))
	}
	if got := readAll(t, tail); len(got) != 400 {
		t.Fatalf("a reader opened before the journal existed read %d, want 400", len(got))
	}
	f, err := os.OpenFile(JournalPath(root), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(`{"version":1,"type":"paused","id":"torn"`)
	if got := readAll(t, r); len(got) != 0 {
		t.Fatalf("a torn line was read: %+v", got)
	}
	f.WriteString("}\n")
	if got := readAll(t, r); len(got) != 1 || got[0].ID != "torn" || got[0].Type != EventPaused {
		t.Fatalf("the completed line: %+v", got)
	}
}

// TestJournalRotation: past JournalMaxSize the journal is rotated to
// events.log.1; a follower reads on across the rotation without losing or
// repeating a line, and a reader from the start reads events.log.1 first.
func TestJournalRotation(t *testing.T) {
	root := t.TempDir()
	if err := AppendEvent(root, Event{Type: EventCreated, ID: "first"}); err != nil {
		t.Fatal(err)
	}
	follow, err := OpenJournal(root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	big := Event{Type: EventExited, ID: "big", Reason: strings.Repeat("0123456789", 400)}
	n, seen, after := 0, 0, 0
	for after < 5 {
		if err := AppendEvent(root, big); err != nil {
			t.Fatal(err)
		}
		n++
		seen += len(readAll(t, follow))
		if _, err := os.Stat(filepath.Join(root, journalRotated)); err == nil {
			after++
		}
		if n > 4*JournalMaxSize/4000 {
			t.Fatal("the journal was never rotated")
		}
	}
	seen += len(readAll(t, follow))
	if seen != n {
		t.Fatalf("follower read %d lines across the rotation, %d were written", seen, n)
	}
	fi, err := os.Stat(JournalPath(root))
	if err != nil || fi.Size() > JournalMaxSize {
		t.Fatalf("current journal: %v, %v; want at most %d bytes", fi, err, JournalMaxSize)
	}
	r, err := OpenJournal(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := readAll(t, r)
	if len(got) == 0 || got[len(got)-1].ID != "big" {
		t.Fatalf("reader from the start: %d events", len(got))
	}
}
