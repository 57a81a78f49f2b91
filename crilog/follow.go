package crilog

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// pollInterval is how often Follow looks for new data and rotations.
var pollInterval = 100 * time.Millisecond

// Follow writes the log at path like Dump and then keeps going: every
// 100 ms it outputs what has been appended and checks for rotation. When
// the file at path has been replaced, it finishes the old file through
// its open descriptor and continues at the start of the next newer file
// (walking path.k ... path if several rotations happened in between). If
// no log exists yet, Follow waits for one and outputs all of it (Tail
// counts only lines present when Follow starts).
//
// Follow returns nil once done returns true and everything written has
// been output; done (nil means never) is how the caller says the
// container has exited, and it must return true only after the last write
// to the log has completed (after the Copy calls have returned). It
// returns ctx.Err() when ctx is done, and an error if a file cannot be read
// or a line does not parse.
func Follow(ctx context.Context, path string, opts ReadOptions, stdout, stderr io.Writer, done func() bool) error {
	fl := &follower{path: path, k: newSink(opts, stdout, stderr), done: done}
	defer fl.close()
	ok, err := fl.start(ctx, opts.Tail)
	if err == nil && ok {
		err = fl.loop(ctx)
	}
	if ferr := fl.k.flush(); err == nil {
		err = ferr
	}
	return err
}

// follower is the state of one Follow call.
type follower struct {
	path string
	k    *sink
	done func() bool
	cur  *lineReader // the newest file, being followed
	fi   int         // index of cur in the initial snapshot order
	cut  tailCut
}

func (fl *follower) finished() bool { return fl.done != nil && fl.done() }

func (fl *follower) close() {
	if fl.cur != nil {
		fl.cur.f.Close()
	}
}

// start waits for the log to exist, outputs the initial snapshot and sets
// cur to its newest file. It reports false if done() ended the wait.
func (fl *follower) start(ctx context.Context, tail int) (bool, error) {
	for {
		finished := fl.finished()
		files, err := openSnapshot(fl.path)
		if err != nil {
			return false, err
		}
		if len(files) > 0 {
			return true, fl.replay(files, tail)
		}
		if finished {
			return false, nil
		}
		if err := sleep(ctx); err != nil {
			return false, err
		}
		tail = -1 // all of a log that appears later is new output
	}
}

// replay outputs the snapshot files as Tail selects and keeps the newest
// open in cur.
func (fl *follower) replay(files []*os.File, tail int) error {
	last := len(files) - 1
	defer closeFiles(files[:last])
	fl.cur, fl.fi = &lineReader{f: files[last]}, last // so that close closes it
	var err error
	if fl.cut, err = findTail(files, tail); err != nil {
		return err
	}
	for fi := fl.cut.start.file; fi < last; fi++ {
		if err := fl.k.drainFile(files[fi], fi, &fl.cut); err != nil {
			return err
		}
	}
	var off int64
	if fl.cut.start.file == last {
		off = fl.cut.start.off
	}
	lr, err := newLineReader(files[last], off)
	if err != nil {
		return err
	}
	fl.cur = lr
	return fl.k.drain(fl.cur, last, &fl.cut)
}

// loop follows the newest file until done or ctx ends.
func (fl *follower) loop(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		finished := fl.finished()
		if err := fl.k.drain(fl.cur, fl.fi, &fl.cut); err != nil {
			return err
		}
		next, err := fl.rotated()
		if err != nil {
			return err
		}
		if next != nil {
			if err := fl.switchTo(next); err != nil {
				return err
			}
			continue
		}
		if err := fl.k.flush(); err != nil {
			return err
		}
		if finished {
			return nil
		}
		if err := sleep(ctx); err != nil {
			return err
		}
	}
}

// rotated returns the file that replaced cur, or nil if cur is still the
// newest (or its successor cannot be opened yet).
func (fl *follower) rotated() (*os.File, error) {
	cur, err := fl.cur.f.Stat()
	if err != nil {
		return nil, err
	}
	at, err := os.Stat(fl.path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && os.SameFile(cur, at) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return openNewer(fl.path, cur)
}

// switchTo finishes cur, which has been rotated away, and continues with
// next from its start.
func (fl *follower) switchTo(next *os.File) error {
	err := fl.k.drain(fl.cur, fl.fi, &fl.cut)
	fl.cur.f.Close()
	fl.cur = &lineReader{f: next, buf: make([]byte, 64<<10)}
	fl.fi++
	return err
}

// sleep waits for one poll interval or until ctx is done.
func sleep(ctx context.Context) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
