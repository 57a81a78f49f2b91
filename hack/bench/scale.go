package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/runtime"
	"github.com/tether-run/tether/store"
)

// settle is how long shims are left alone before their memory is read, so
// the figure is the idle one and not the tail of start-up.
const settle = 3 * time.Second

// listReps is how many fresh managers list the root at each checkpoint.
const listReps = 7

// pass is the one growing population of containers that the memory,
// reattach and scale rows measure at checkpoints: 10, 50, 100 and scale.
type pass struct {
	b       *bench
	ids     []string
	started time.Duration // wall time spent starting, checkpoints excluded
	failed  []error
}

// grow starts containers with b.par parallel `tether run -d` until there
// are n.
func (p *pass) grow(ctx context.Context, n int) error {
	t0 := time.Now()
	defer func() { p.started += time.Since(t0) }()
	p.failed = append(p.failed, p.b.inParallel(func(send func(string)) {
		for i := len(p.ids); i < n && ctx.Err() == nil; i++ {
			id := p.b.id("scale", i)
			p.ids = append(p.ids, id)
			send(id)
		}
	}, func(id string) error {
		_, err := p.b.tether("run", "-d", "--bundle", p.b.sleepBundle, id)
		return err
	})...)
	if ctx.Err() != nil {
		return errStopped
	}
	if len(p.failed) > 0 {
		return fmt.Errorf("%d of %d starts failed, first: %w", len(p.failed), len(p.ids), p.failed[0])
	}
	return nil
}

// shims returns the identities of the live shims of the pass.
func (p *pass) shims() ([]proc.Identity, error) {
	var out []proc.Identity
	for _, id := range p.ids {
		sid, err := store.At(filepath.Dir(p.b.cdir(id)), id).ReadShimPid()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if err := sid.Check(); err != nil {
			return nil, fmt.Errorf("%s: shim: %w", id, err)
		}
		out = append(out, sid)
	}
	return out, nil
}

// memory reads every shim's figures after waiting wait.
func (p *pass) memory(ctx context.Context, wait time.Duration) (*memSet, error) {
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return nil, errStopped
	}
	ids, err := p.shims()
	if err != nil {
		return nil, err
	}
	pids := make([]int, len(ids))
	for i, id := range ids {
		pids[i] = id.Pid
	}
	return measurePids(pids)
}

// list times listReps fresh managers (runtime.New + List) and checks each
// sees every container running.
func (p *pass) list(ctx context.Context) (samples, error) {
	var s samples
	for r := 0; r < listReps; r++ {
		t0 := time.Now()
		m, err := p.b.manager()
		if err != nil {
			return nil, err
		}
		states, err := m.List(ctx)
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		running := 0
		for _, st := range states {
			if st.Status == runtime.StatusRunning {
				running++
			}
		}
		if running != len(p.ids) || len(states) != len(p.ids) {
			return nil, fmt.Errorf("list saw %d containers, %d running; want %d running", len(states), running, len(p.ids))
		}
		s = append(s, ms(d))
	}
	return s, nil
}

// deleteAll removes every container of the pass with `tether delete`,
// b.par at a time, and checks that the root is empty and every shim gone.
func (p *pass) deleteAll(shims []proc.Identity) (time.Duration, error) {
	t0 := time.Now()
	errs := p.b.inParallel(func(send func(string)) {
		for _, id := range p.ids {
			send(id)
		}
	}, func(id string) error {
		_, err := p.b.tether("delete", "--force", id)
		return err
	})
	d := time.Since(t0)
	if len(errs) > 0 {
		return d, fmt.Errorf("%d deletes failed, first: %w", len(errs), errs[0])
	}
	return d, p.checkEmpty(shims)
}

// checkEmpty verifies that deleting left nothing: no folder, no shim.
func (p *pass) checkEmpty(shims []proc.Identity) error {
	for _, id := range p.ids {
		if _, err := os.Stat(p.b.cdir(id)); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: state folder left after delete", id)
		}
	}
	for _, s := range shims {
		if !s.WaitExit(5 * time.Second) {
			return fmt.Errorf("shim pid %d still running after delete", s.Pid)
		}
	}
	p.ids = nil
	return nil
}

// activityRounds and activityExecs are the work given to every shim before
// its memory is read again: that many state requests (fresh managers'
// List) and `tether exec -- true` calls.
const (
	activityRounds = 10
	activityExecs  = 3
)

// activity gives every shim of the pass some work: activityRounds Lists
// and activityExecs execs each, b.par execs at a time.
func (p *pass) activity(ctx context.Context) error {
	for r := 0; r < activityRounds; r++ {
		if _, err := p.list(ctx); err != nil {
			return err
		}
	}
	errs := p.b.inParallel(func(send func(string)) {
		for i := 0; i < activityExecs && ctx.Err() == nil; i++ {
			for _, id := range p.ids {
				send(id)
			}
		}
	}, func(id string) error {
		_, err := p.b.tether("exec", id, "--", "true")
		return err
	})
	if ctx.Err() != nil {
		return errStopped
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d execs failed, first: %w", len(errs), errs[0])
	}
	return nil
}

// inParallel runs f on every ID that feed sends, b.par at a time, and
// returns the errors f gave.
func (b *bench) inParallel(feed func(send func(string)), f func(id string) error) []error {
	next := make(chan string)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w := 0; w < b.par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if err := f(id); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	feed(func(id string) { next <- id })
	close(next)
	wg.Wait()
	return errs
}
