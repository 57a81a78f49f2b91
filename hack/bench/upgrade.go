package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/runtime"
)

// Upgrade rows. Each container runs a counter (one number a line), so a
// lost or doubled byte shows as a gap or a repeat in its log; every log is
// checked after the upgrades and a row with one fails.
const (
	upgradeOne = 20  // containers of the one-shim row: one upgrade each
	upgradeAll = 100 // containers of the --all row
	// upgradeTarget is the target per shim, in ms.
	upgradeTarget = 20
)

// upgradeCounter prints 0, 1, 2... one number a line, pausing every
// pause lines for usleep µs: output enough to catch a lost or doubled
// line in the few milliseconds of an upgrade, without loading the machine
// (one fork per pause).
func upgradeCounter(pause, usleep int) []string {
	return []string{"sh", "-c", fmt.Sprintf(`i=0; while :; do echo $i; i=$((i+1)); [ $((i%%%d)) -eq 0 ] && usleep %d; done`, pause, usleep)}
}

// upgradeRows: the time from the upgrade request to the shim serving again
// (Container.Upgrade returns when the new binary, in the same process,
// answers), one upgrade in each of upgradeOne containers, against the
// restart a shim without in-place upgrade needs (delete --force + run -d);
// then `tether upgrade --all` over upgradeAll containers, per shim.
func (b *bench) upgradeRows(ctx context.Context) []Row {
	next, err := b.nextShim()
	if err != nil {
		return []Row{failed("upgrade", "upgrade (one shim)", "ms", "< 20 ms", err)}
	}
	return []Row{b.upgradeOneRow(ctx, next), b.upgradeAllRow(ctx, next)}
}

// nextShim copies tether-shim to another path: the "new" binary.
func (b *bench) nextShim() (string, error) {
	data, err := os.ReadFile(filepath.Join(b.bin, "tether-shim"))
	if err != nil {
		return "", err
	}
	next := filepath.Join(b.dir, "tether-shim-next")
	return next, os.WriteFile(next, data, 0o755)
}

func (b *bench) upgradeOneRow(ctx context.Context, next string) Row {
	const name, label, target = "upgrade", "upgrade (one shim)", "< 20 ms, no byte lost"
	ids, err := b.startCounters(ctx, "upg", upgradeOne, upgradeCounter(50, 50000)) // ~1000 lines/s each
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	defer b.removeContainers(ids)
	m, err := b.manager()
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	var st samples
	for _, id := range ids {
		if ctx.Err() != nil {
			return failed(name, label, "ms", target, errStopped)
		}
		c, err := m.Load(ctx, id)
		if err != nil {
			return failed(name, label, "ms", target, err)
		}
		t0 := time.Now()
		if _, err := c.Upgrade(ctx, next); err != nil {
			return failed(name, label, "ms", target, err)
		}
		st = append(st, ms(time.Since(t0)))
	}
	lines, err := b.checkCounters(ctx, ids)
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	restart, err := b.restarts(ctx, b.n)
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	r := Row{Name: name, Label: label, figure: figureOf(st), Unit: "ms", Target: target,
		Note: fmt.Sprintf("Container.Upgrade until the new binary answers, one in each of %d containers printing a counter; "+
			"their logs (%d lines) have no gap and no duplicate; baseline: what a shim without it needs, a restart (delete --force + run -d)",
			len(st), lines)}
	r.withBaseline("restart", figureOf(restart))
	r.met(r.Value < upgradeTarget)
	return r
}

func (b *bench) upgradeAllRow(ctx context.Context, next string) Row {
	const name, label, target = "upgrade_all", "upgrade --all (per shim)", "< 20 ms, no byte lost"
	ids, err := b.startCounters(ctx, "upa", upgradeAll, upgradeCounter(50, 500000)) // ~100 lines/s each
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	defer b.removeContainers(ids)
	d, err := b.tether("upgrade", "--all", "--shim", next)
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	lines, err := b.checkCounters(ctx, ids)
	if err != nil {
		return failed(name, label, "ms", target, err)
	}
	per := ms(d) / float64(len(ids))
	r := Row{Name: name, Label: label, figure: single(per), Unit: "ms", Target: target,
		Note: fmt.Sprintf("wall time of 'tether upgrade --all' over %d containers printing a counter: %s ms in all; "+
			"their logs (%d lines) have no gap and no duplicate", len(ids), fmtNum(ms(d)), lines)}
	r.met(per < upgradeTarget)
	return r
}

// startCounters runs n counter containers and waits until each has
// written some lines.
func (b *bench) startCounters(ctx context.Context, kind string, n int, args []string) ([]string, error) {
	dir := filepath.Join(b.dir, kind+"-bundle")
	if err := bundle.Write(dir, bundle.Options{Args: args}); err != nil {
		return nil, err
	}
	var ids []string
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			b.removeContainers(ids)
			return nil, errStopped
		}
		id := b.id(kind, i)
		if _, err := b.tether("run", "-d", "--bundle", dir, id); err != nil {
			b.removeContainers(ids)
			return nil, err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		deadline := time.Now().Add(time.Minute)
		for counterLines(filepath.Join(b.cdir(id), "output.log")) < 2 {
			if time.Now().After(deadline) {
				b.removeContainers(ids)
				return nil, fmt.Errorf("container %s printed nothing in a minute", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return ids, nil
}

// checkCounters lets the counters run on a moment, kills them, and checks
// that every log counts up without a gap or a duplicate. It returns the
// lines checked.
func (b *bench) checkCounters(ctx context.Context, ids []string) (int, error) {
	time.Sleep(200 * time.Millisecond)
	m, err := b.manager()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, id := range ids {
		c, err := m.Load(ctx, id)
		if err != nil {
			return total, err
		}
		if err := c.Kill(ctx, syscall.SIGKILL, false); err != nil {
			return total, fmt.Errorf("kill %s: %w", id, err)
		}
		if _, err := c.Wait(ctx); err != nil {
			return total, err
		}
		n, err := checkCounterLog(c)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// checkCounterLog checks one container's counter log.
func checkCounterLog(c *runtime.Container) (int, error) {
	var out, errb strings.Builder
	if err := crilog.Dump(c.LogPath(), crilog.ReadOptions{Tail: -1}, &out, &errb); err != nil {
		return 0, err
	}
	prev := -1
	n := 0
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		v, err := strconv.Atoi(l)
		if err != nil {
			return n, fmt.Errorf("container %s: log line %q is not a counter", c.ID(), l)
		}
		if prev >= 0 && v != prev+1 {
			return n, fmt.Errorf("container %s: output lost or doubled: %d follows %d", c.ID(), v, prev)
		}
		prev = v
		n++
	}
	return n, nil
}

// counterLines counts the lines of a log file (a cheap progress probe).
func counterLines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

// restarts times n restarts of one container: delete --force, run -d.
func (b *bench) restarts(ctx context.Context, n int) (samples, error) {
	id := b.id("restart", 0)
	if _, err := b.tether("run", "-d", "--bundle", b.sleepBundle, id); err != nil {
		return nil, err
	}
	defer b.tether("delete", "--force", id)
	var s samples
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return nil, errStopped
		}
		t0 := time.Now()
		if _, err := b.tether("delete", "--force", id); err != nil {
			return nil, err
		}
		if _, err := b.tether("run", "-d", "--bundle", b.sleepBundle, id); err != nil {
			return nil, err
		}
		s = append(s, ms(time.Since(t0)))
	}
	return s, nil
}

// removeContainers force-deletes the given containers.
func (b *bench) removeContainers(ids []string) {
	for _, id := range ids {
		b.tether("delete", "--force", id)
	}
}
