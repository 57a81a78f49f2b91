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
	for i := -1; i < n; i++ {
		if ctx.Err() != nil {
			return nil, nil, errStopped
		}
		first, second := a, b
		if i%2 != 0 {
			first, second = b, a
		}
		d1, err := first(i + 1)
		if err != nil {
			return nil, nil, err
		}
		d2, err := second(i + 1)
		if err != nil {
			return nil, nil, err
		}
		if i < 0 {
			continue
		}
		if i%2 != 0 {
			d1, d2 = d2, d1
		}
		sa, sb = append(sa, ms(d1)), append(sb, ms(d2))
	}
	return sa, sb, nil
}

// startRow: `tether run -d` (create through a new shim, then start) against
// `runc create` + `runc start` on the same bundle, each container removed
// (untimed) before the next sample.
func (b *bench) startRow(ctx context.Context) Row {
	const name, label, target = "start", "start (run -d)", "≤ 1.10x"
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
	st, sr, err := pair(ctx, b.n, viaTether, direct)
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	r := Row{Name: name, Label: label, figure: figureOf(st), Unit: "ms", Target: target,
		Note: fmt.Sprintf("wall time of the CLI, %d samples each, interleaved; baseline runs %s create --pid-file + start with --log, as tether's binding does", len(st), b.rt)}
	r.withBaseline(b.rt+" create+start", figureOf(sr))
	r.met(r.Ratio != nil && *r.Ratio <= 1.10)
	return r
}

// execRow: `tether exec ID -- true` against `runc exec ID true` in the same
// running container.
func (b *bench) execRow(ctx context.Context) Row {
	const name, label, target = "exec", "exec (true)", "≤ 1.2x"
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
	r.met(r.Ratio != nil && *r.Ratio <= 1.2)
	return r
}
