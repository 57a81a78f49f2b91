package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pair runs a and b n times each, alternating which goes first, after one
// unmeasured warm-up of each, so drift in the machine's load falls on both
// series alike.
func pair(ctx context.Context, n int, a, b func(i int) (time.Duration, error)) (sa, sb samples, err error) {
	s, err := interleave(ctx, n, a, b)
	if err != nil {
		return nil, nil, err
	}
	return s[0], s[1], nil
}

// interleave runs every f n times, one round at a time, after one
// unmeasured warm-up round. Each round starts one later in the list than
// the one before (A B C, B C A, C A B, ...), so that drift in the
// machine's load, and whatever one contender leaves behind for the next
// (page cache, a cgroup being removed), falls on all of them alike. It
// returns one series per f, in ms.
func interleave(ctx context.Context, n int, fs ...func(i int) (time.Duration, error)) ([]samples, error) {
	out := make([]samples, len(fs))
	for i := -1; i < n; i++ {
		for k := range fs {
			if ctx.Err() != nil {
				return nil, errStopped
			}
			j := (k + max(i, 0)) % len(fs)
			d, err := fs[j](i + 1)
			if err != nil {
				return nil, err
			}
			if i >= 0 {
				out[j] = append(out[j], ms(d))
			}
		}
	}
	return out, nil
}

// versus is a row of another contender than Tether (conmon, for one),
// against the same baseline as Tether's row, with the ratio to Tether in
// its note.
func versus(name, label, unit string, s samples, baseName string, base samples, tether Row) Row {
	r := Row{Name: name, Label: label, figure: figureOf(s), Unit: unit}
	r.withBaseline(baseName, figureOf(base))
	if v := figureOf(s).Value; v != 0 {
		r.Note = fmt.Sprintf("Tether / this: %.2fx (same run, interleaved with it)", tether.Value/v)
	}
	return r
}

// startRow: `tether run -d` (create through a new shim, then start) against
// `runc create` + `runc start` on the same bundle, each container removed
// (untimed) before the next sample.
func (b *bench) startRow(ctx context.Context) []Row {
	const name, label, target = "start", "start (run -d)", "≤ 1.05x"
	viaTether := func(i int) (time.Duration, error) {
		id := b.id("start", i)
		d, err := b.tether("run", "-d", "--bundle", b.sleepBundle, id)
		if err != nil {
			return 0, err
		}
		_, err = b.tether("delete", "--force", id)
		return d, err
	}
	direct := func(i int) (time.Duration, error) {
		id := b.id("rstart", i)
		d1, err := b.runtimeCmd(b.rawRoot, "create", "--bundle", b.sleepBundle,
			"--pid-file", filepath.Join(b.dir, "raw.pid"), id)
		if err != nil {
			return 0, err
		}
		d2, err := b.runtimeCmd(b.rawRoot, "start", id)
		if _, derr := b.runtimeCmd(b.rawRoot, "delete", "--force", id); err == nil {
			err = derr
		}
		return d1 + d2, err
	}
	fs := []func(int) (time.Duration, error){viaTether, direct}
	cm, cerr := b.newConmonSet()
	if cerr == nil {
		defer cm.stop()
		fs = append(fs, func(i int) (time.Duration, error) {
			id := b.id("cstart", i)
			d, err := cm.launch(id, b.sleepBundle)
			if rerr := cm.remove(id); err == nil {
				err = rerr
			}
			return d, err
		})
	}
	s, err := interleave(ctx, b.n, fs...)
	if err != nil {
		return []Row{failed(name, label, "ms", target, err)}
	}
	st, sr := s[0], s[1]
	r := Row{Name: name, Label: label, figure: figureOf(st), Unit: "ms", Target: target,
		Note: fmt.Sprintf("wall time of the CLI, %d samples each, interleaved; baseline runs %s create --pid-file + start with --log, as tether's binding does", len(st), b.rt)}
	r.withBaseline(b.rt+" create+start", figureOf(sr))
	r.met(r.Ratio != nil && *r.Ratio <= 1.05)
	if cerr != nil {
		r.Note += "; no conmon row: " + cerr.Error()
		return []Row{r}
	}
	c := versus("start_conmon", "start: conmon", "ms", s[2], b.rt+" create+start", sr, r)
	c.Note = "conmon started as podman does (sync pipe read until created), then " + b.rt + " start; " + c.Note
	return []Row{r, c}
}

// execRow: `tether exec ID -- true` against `runc exec ID true` in the same
// running container.
func (b *bench) execRow(ctx context.Context) Row {
	const name, label, target = "exec", "exec (true)", "≤ 1.15x"
	id := b.id("exec", 0)
	if _, err := b.tether("run", "-d", "--bundle", b.sleepBundle, id); err != nil {
		return failed(name, label, "ms", target, err)
	}
	defer b.tether("delete", "--force", id)
	viaTether := func(int) (time.Duration, error) { return b.tether("exec", id, "--", "true") }
	direct := func(int) (time.Duration, error) {
		return b.runtimeCmd(b.tetherRuntimeRoot(), "exec", id, "true")
	}
	n := max(b.n, 20) + 10
	st, sr, err := pair(ctx, n, viaTether, direct)
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	r := Row{Name: name, Label: label, figure: figureOf(st), Unit: "ms", Target: target,
		Note: fmt.Sprintf("wall time of the CLI until the exit status is known, %d samples each, interleaved", len(st))}
	r.withBaseline(b.rt+" exec", figureOf(sr))
	r.met(r.Ratio != nil && *r.Ratio <= 1.15)
	return r
}
