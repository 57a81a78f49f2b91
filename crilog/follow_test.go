package crilog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startFollow runs Follow in a goroutine; the returned channel yields its
// result, and setting done makes it finish.
func startFollow(ctx context.Context, path string, opts ReadOptions, out, errOut *syncBuffer, done *atomic.Bool) chan error {
	res := make(chan error, 1)
	go func() { res <- Follow(ctx, path, opts, out, errOut, done.Load) }()
	return res
}

// result waits for Follow to return.
func result(t *testing.T, res chan error) error {
	t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return")
		return nil
	}
}

func TestFollow(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{MaxSize: 300, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteStream(Stdout, time.Now(), []byte("before\n")); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	var done atomic.Bool
	res := startFollow(context.Background(), path, ReadOptions{Tail: -1}, &out, &errOut, &done)
	waitFor(t, "old output", func() bool { return out.String() == "before\n" })

	want := "before\n"
	for i := range 20 { // about 60 bytes an entry: a rotation every few lines
		line := fmt.Sprintf("line %d\n", i)
		w.WriteStream(Stdout, time.Now(), []byte(line))
		want += line
		waitFor(t, line, func() bool { return out.String() == want })
	}
	names, _ := Files(path)
	if len(names) != 3 {
		t.Fatalf("expected rotations, have files %q", names)
	}
	w.WriteStream(Stderr, time.Now(), []byte("last words"))
	w.Close()
	done.Store(true)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
	if out.String() != want || errOut.String() != "last words" {
		t.Errorf("Follow wrote %q, %q", out.String(), errOut.String())
	}
}

// TestFollowManyRotationsBetweenPolls writes many rotations faster than
// Follow polls: it must walk through the rotated files in order.
func TestFollowManyRotationsBetweenPolls(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{MaxSize: 500, MaxFiles: 50})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteStream(Stdout, time.Now(), []byte("start\n"))
	var out, errOut syncBuffer
	var done atomic.Bool
	res := startFollow(context.Background(), path, ReadOptions{Tail: -1}, &out, &errOut, &done)
	waitFor(t, "start", func() bool { return out.String() == "start\n" })
	var want strings.Builder
	want.WriteString("start\n")
	for i := range 200 {
		line := fmt.Sprintf("burst line %d\n", i)
		w.WriteStream(Stdout, time.Now(), []byte(line))
		want.WriteString(line)
	}
	if names, _ := Files(path); len(names) < 20 {
		t.Fatalf("only %d files", len(names))
	}
	w.Close()
	done.Store(true)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("Follow wrote %d bytes, want %d:\n%s", len(out.String()), want.Len(), out.String())
	}
}

func TestFollowWaitsForLog(t *testing.T) {
	path := logPath(t)
	var out, errOut syncBuffer
	var done atomic.Bool
	res := startFollow(context.Background(), path, ReadOptions{Tail: 0}, &out, &errOut, &done)
	time.Sleep(2 * pollInterval)
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteStream(Stderr, time.Now(), []byte("hello\n"))
	waitFor(t, "hello", func() bool { return errOut.String() == "hello\n" })
	w.Close()
	done.Store(true)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
}

func TestFollowTailAndDone(t *testing.T) {
	path := logPath(t)
	writeChunks(t, path, Options{}, []chunk{{Stdout, "1\n2\n3\n"}})
	var out, errOut syncBuffer
	var done atomic.Bool
	done.Store(true) // already exited: output what is there and return
	res := startFollow(context.Background(), path, ReadOptions{Tail: 2, Timestamps: true}, &out, &errOut, &done)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
	want := "2024-05-01T12:00:00.000000000Z 2\n2024-05-01T12:00:00.000000000Z 3\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	// done with no log at all returns at once.
	if err := Follow(context.Background(), logPath(t), ReadOptions{}, nil, nil, func() bool { return true }); err != nil {
		t.Errorf("Follow of a missing log of an exited container: %v", err)
	}
}

func TestFollowTailZeroShowsOnlyNew(t *testing.T) {
	path := logPath(t)
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteStream(Stdout, time.Now(), []byte("old\n"))
	var out, errOut syncBuffer
	var done atomic.Bool
	res := startFollow(context.Background(), path, ReadOptions{Tail: 0}, &out, &errOut, &done)
	time.Sleep(2 * pollInterval)
	w.WriteStream(Stdout, time.Now(), []byte("new\n"))
	w.Close()
	waitFor(t, "new", func() bool { return out.String() == "new\n" })
	done.Store(true)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
}

func TestFollowContextCancel(t *testing.T) {
	path := logPath(t)
	writeChunks(t, path, Options{}, []chunk{{Stdout, "x\n"}})
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	var done atomic.Bool
	res := startFollow(ctx, path, ReadOptions{Tail: -1}, &out, &errOut, &done)
	waitFor(t, "x", func() bool { return out.String() == "x\n" })
	cancel()
	if err := result(t, res); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel: %v, want context.Canceled", err)
	}
}
