package main

import (
	"context"
	"fmt"
	"time"
)

// memWhen is the population at which shims' memory is compared.
const memWhen = 50

// conmonBaseline measures the conmon baseline: memWhen conmons, each driving
// the runtime on one running container, read after the same settle time
// as the shims. It also returns conmon's version.
func (b *bench) conmonBaseline(ctx context.Context) (*memSet, string, error) {
	c, err := b.newConmonSet()
	if err != nil {
		return nil, "", err
	}
	defer c.stop()
	for i := 0; i < memWhen; i++ {
		if ctx.Err() != nil {
			return nil, "", errStopped
		}
		if err := c.start(i); err != nil {
			return nil, "", err
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return nil, "", errStopped
	}
	m, err := measurePids(c.pids())
	if err == nil && len(m.pss) != memWhen {
		err = fmt.Errorf("%d of %d conmons alive", len(m.pss), memWhen)
	}
	return m, versionLine(c.bin, "--version"), err
}

// memoryRows turns the shims' and conmons' figures into the memory rows.
// Targets apply to every shim (the maximum), as the issue says "each".
func memoryRows(shims, conmon *memSet, conmonNote string) []Row {
	type spec struct {
		name, label, unit, target string
		limit                     float64
		get                       func(*memSet) samples
	}
	specs := []spec{
		{"memory_pss", "memory: PSS per shim", "MiB", "≤ 0.8 MiB each", 0.8, func(m *memSet) samples { return m.pss }},
		{"memory_rss", "memory: RSS per shim", "MiB", "≤ 5 MiB each", 5, func(m *memSet) samples { return m.rss }},
		{"memory_threads", "memory: threads per shim", "", "≤ 3 each", 3, func(m *memSet) samples { return m.threads }},
		{"memory_fds", "memory: fds per shim", "", "", 0, func(m *memSet) samples { return m.fds }},
	}
	var rows []Row
	for _, s := range specs {
		r := Row{Name: s.name, Label: s.label, figure: figureOf(s.get(shims)), Unit: s.unit, Target: s.target}
		if s.limit > 0 {
			r.met(r.Max <= s.limit)
		}
		if conmon != nil {
			r.withBaseline("conmon", figureOf(s.get(conmon)))
		} else {
			r.withBaseline("conmon", figure{})
		}
		rows = append(rows, r)
	}
	rows[0].Note = fmt.Sprintf("%d idle shims, read %v after the last start (smaps_rollup); anonymous %s, file-backed PSS %s",
		len(shims.pss), settle, fmtFigure(figureOf(shims.anon), "MiB"), fmtFigure(figureOf(shims.pssFile), "MiB"))
	if conmon != nil {
		rows[0].Note += fmt.Sprintf("; baseline: %d idle %s monitors of the same runtime and bundle, anonymous %s",
			len(conmon.pss), conmonNote, fmtFigure(figureOf(conmon.anon), "MiB"))
	} else {
		rows[0].Note += "; no conmon baseline: " + conmonNote
	}
	return rows
}

// activitySettle is how long shims are left alone after the activity: the
// shim's idle trimmer (internal/gotune) looks at most every 8 s
// while idle, then every 2 s, and trims after 2 s without allocation.
const activitySettle = 13 * time.Second

// memoryPhase reads the idle shims' memory, gives them some work, and reads
// it again once they are idle.
func (b *bench) memoryPhase(ctx context.Context, p *pass, conmon *memSet, conmonNote string) ([]Row, error) {
	m, err := p.memory(ctx, settle)
	if err != nil {
		return nil, err
	}
	rows := memoryRows(m, conmon, conmonNote)
	fmt.Fprintf(logw, "bench: memory after activity (%d Lists, %d execs per container)\n", activityRounds, activityExecs)
	if err := p.activity(ctx); err != nil {
		return rows, err
	}
	after, err := p.memory(ctx, activitySettle)
	if err != nil {
		return rows, err
	}
	return append(rows, activityRows(after)...), nil
}

// activityRows are the memory rows of shims that served some work and are
// idle again: the same targets apply (they are idle shims too).
func activityRows(m *memSet) []Row {
	pss := Row{Name: "memory_active_pss", Label: "memory after activity: PSS", figure: figureOf(m.pss),
		Unit: "MiB", Target: "≤ 1.0 MiB each"}
	pss.met(pss.Max <= 1.0)
	rss := Row{Name: "memory_active_rss", Label: "memory after activity: RSS", figure: figureOf(m.rss),
		Unit: "MiB", Target: "≤ 5 MiB each"}
	rss.met(rss.Max <= 5)
	th := Row{Name: "memory_active_threads", Label: "memory after activity: threads", figure: figureOf(m.threads),
		Target: "≤ 3 each"}
	th.met(th.Max <= 3)
	pss.Note = fmt.Sprintf("the same %d shims after %d state requests and %d `exec -- true` each, read %v later; anonymous %s",
		len(m.pss), activityRounds, activityExecs, activitySettle, fmtFigure(figureOf(m.anon), "MiB"))
	return []Row{pss, rss, th}
}

// reattachRow describes a fresh manager's List with n running containers.
func reattachRow(n int, s samples, target bool) Row {
	r := Row{Name: fmt.Sprintf("reattach_%d", n), Label: fmt.Sprintf("reattach (List, %d running)", n),
		figure: figureOf(s), Unit: "ms"}
	r.Note = fmt.Sprintf("runtime.New + List by a fresh manager, %d times; %.3f ms per container", len(s), r.Value/float64(n))
	if target {
		r.Target = "< 50 ms"
		r.met(r.Value < 50)
	}
	return r
}

// runPass grows the population to scale, measuring at the checkpoints
// (memory at memWhen only if withMemory), then deletes it all. It returns
// the memory, reattach and scale rows.
func (b *bench) runPass(ctx context.Context, scale int, withMemory bool, conmon *memSet, conmonNote string) []Row {
	p := &pass{b: b}
	var rows []Row
	fail := func(name, label, unit string, err error) []Row {
		b.abandonPass(p)
		return append(rows, failed(name, label, unit, "", err))
	}
	lists := map[int]samples{}
	for _, n := range []int{10, memWhen, 100, scale} {
		if n > scale || (n == scale && len(p.ids) == scale) {
			continue
		}
		fmt.Fprintf(logw, "bench: scale pass: starting containers up to %d\n", n)
		if err := p.grow(ctx, n); err != nil {
			return fail("scale_start", fmt.Sprintf("scale: start %d", scale), "s", err)
		}
		if n == memWhen {
			if withMemory {
				mr, err := b.memoryPhase(ctx, p, conmon, conmonNote)
				rows = append(rows, mr...)
				if err != nil {
					return fail("memory_pss", "memory", "MiB", err)
				}
			}
			continue
		}
		s, err := p.list(ctx)
		if err != nil {
			return fail("reattach", fmt.Sprintf("reattach (List, %d running)", n), "ms", err)
		}
		lists[n] = s
	}
	for _, n := range []int{10, 100, scale} {
		if s, ok := lists[n]; ok {
			rows = append(rows, reattachRow(n, s, n == 100))
		}
	}
	return append(rows, b.scaleRows(ctx, p)...)
}

// scaleRows measures the full population, then deletes it.
func (b *bench) scaleRows(ctx context.Context, p *pass) []Row {
	n := len(p.ids)
	m, err := p.memory(ctx, settle)
	if err != nil {
		b.abandonPass(p)
		return []Row{failed("scale_memory", fmt.Sprintf("scale: shim memory (%d)", n), "MiB", "", err)}
	}
	shims, _ := p.shims()
	fmt.Fprintf(logw, "bench: scale pass: deleting %d containers\n", n)
	del, derr := p.deleteAll(shims)
	ok := derr == nil && len(p.failed) == 0
	start := Row{Name: "scale_start", Label: fmt.Sprintf("scale: start %d", n), figure: single(p.started.Seconds()),
		Unit: "s", Target: "all succeed",
		Note: fmt.Sprintf("tether run -d, %d in parallel; %.0f ms per container; all %d listed running by fresh managers", b.par, p.started.Seconds()*1000/float64(n), n)}
	start.met(ok)
	dr := Row{Name: "scale_delete", Label: fmt.Sprintf("scale: delete %d", n), figure: single(del.Seconds()),
		Unit: "s", Target: "all succeed",
		Note: fmt.Sprintf("tether delete --force, %d in parallel; root empty and every shim gone afterwards", b.par)}
	if derr != nil {
		dr.Error = derr.Error()
	}
	dr.met(ok)
	mr := Row{Name: "scale_memory", Label: fmt.Sprintf("scale: all %d shims, PSS", n), figure: single(m.pss.sum()),
		Unit: "MiB", Target: "reported",
		Note: fmt.Sprintf("per shim PSS %s, RSS %s, threads %s", fmtFigure(figureOf(m.pss), "MiB"),
			fmtFigure(figureOf(m.rss), "MiB"), fmtFigure(figureOf(m.threads), ""))}
	mr.met(ok)
	return []Row{start, dr, mr}
}

// abandonPass deletes what a failed pass started (best effort; the final
// cleanup kills whatever is left by identity).
func (b *bench) abandonPass(p *pass) {
	shims, _ := p.shims()
	p.deleteAll(shims)
}
