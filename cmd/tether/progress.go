package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// errAlreadyReported is a failure whose details were printed already
// (one line per item): report exits 1 without another line.
type errAlreadyReported struct{ error }

// parallelism is how many items forEach works on at once: deleting a
// container mostly waits for its shim and the OCI runtime.
const parallelism = 4

// forEach runs do for every ID, a few at a time. On a terminal it keeps a
// progress line on stderr ("deleting 3/10"), erased at the end; piped, it
// prints nothing but failures, one line each. It fails if any item did.
func forEach(ctx context.Context, g *globals, verb string, ids []string, do func(context.Context, string) error) error {
	p := newProgress(g.stderr, verb, len(ids))
	var mu sync.Mutex
	var failed []string
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := do(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				p.clear()
				fmt.Fprintf(g.stderr, "tether %s: %s\n", verb, oneLine(err))
				failed = append(failed, id)
			}
			p.step()
		}()
	}
	wg.Wait()
	p.clear()
	if len(failed) > 0 {
		return errAlreadyReported{fmt.Errorf("%s failed for %s", verb, strings.Join(failed, ", "))}
	}
	return nil
}

// progress is a one-line counter on a terminal; on anything else it is
// silent.
type progress struct {
	w         io.Writer
	verb      string
	done, all int
	on, shown bool
}

func newProgress(w io.Writer, verb string, all int) *progress {
	return &progress{w: w, verb: verb, all: all, on: isTerminal(w)}
}

func (p *progress) step() {
	p.done++
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K%s %d/%d", p.verb, p.done, p.all)
		p.shown = true
	}
}

// clear erases the progress line, if one is shown.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// busyTick is how often busy redraws its line.
const busyTick = time.Second

// busy shows, on a terminal, a line saying what is being done and for how
// long ("restoring c2 3s"), redrawn every second until the returned
// function is called, which erases it; on anything else it shows nothing.
// It is for one long operation (a checkpoint, a restore).
func busy(w io.Writer, what string) (done func()) {
	if !isTerminal(w) {
		return func() {}
	}
	start := time.Now()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(busyTick)
		defer t.Stop()
		for {
			fmt.Fprintf(w, "\r\033[K%s %ds", what, int(time.Since(start).Seconds()))
			select {
			case <-stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return sync.OnceFunc(func() { close(stop); <-stopped })
}
