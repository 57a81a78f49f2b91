// Command bench measures Tether side by side with baselines measured in
// the same run and prints one table (make bench; see README, "Benchmarks").
//
//	go run ./hack/bench -bin bin [-json FILE] [-markdown] [-runtime runc] [-n 20] [-scale 300]
//
// Rows: start (tether run -d against runtime create+start), exec (tether
// exec against runtime exec), exit record (SIGKILL of init to exit.json on
// disk), logs (256 MiB of stdout through the shim against the same bytes
// written to a file), memory (50 idle shims against 50 conmons), reattach
// (a fresh manager's List with 10, 100 and 300 containers), scale (300
// containers started, listed, deleted), podman (`podman run -d` and the
// idle monitor's PSS with tether-conmon against conmon) and upgrade (an
// in-place shim upgrade of 20 containers one by one against a restart, and
// of 100 with tether upgrade --all, every output byte checked) and tracer
// (what the rootless exit tracer costs a process: signals, system calls).
//
// Everything runs in a fresh folder under /tmp with container IDs unique to
// the run. On exit, and on SIGINT, SIGTERM or SIGHUP, every shim, init,
// conmon and runtime container of the run is removed, by recorded identity
// only (never by name), and the folder deleted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// logw receives progress lines.
var logw io.Writer = os.Stderr

// rowNames are the rows -only may name.
var rowNames = []string{"start", "memory", "reattach", "exit", "logs", "exec", "scale", "podman", "upgrade", "floor", "tracer"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == tracerChildArg {
		tracerChild()
	}
	bin := flag.String("bin", "bin", "folder holding tether and tether-shim ('make build')")
	jsonOut := flag.String("json", "", "also write the rows to this file as a JSON array")
	markdown := flag.Bool("markdown", false, "print the table as Markdown")
	rt := flag.String("runtime", "runc", "OCI runtime (runc or crun)")
	n := flag.Int("n", 20, "samples per timed row")
	scale := flag.Int("scale", 300, "containers in the scale row")
	par := flag.Int("parallel", 4, "parallel starts and deletes in the scale pass")
	only := flag.String("only", "", "comma-separated rows to run ("+strings.Join(rowNames, ",")+"); empty runs all")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (containers run with the real runtime): sudo make bench")
		os.Exit(1)
	}
	want, err := parseOnly(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	b, err := newBench(*bin, *rt, *n, *par)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go onSignal(b, cancel, finished)
	t0 := time.Now()
	info, load0 := machineInfo(b), loadAvg()
	rows := b.runAll(ctx, want, *scale)
	b.cleanup()
	close(finished)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted; everything it started was removed")
		os.Exit(130)
	}
	fmt.Printf("Tether benchmarks, %s; load average %s at the start, %s at the end; total %s\n\n",
		info, load0, loadAvg(), time.Since(t0).Round(time.Second))
	printTable(os.Stdout, rows, *markdown)
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rows); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	for _, r := range rows {
		if r.Error != "" {
			os.Exit(1)
		}
	}
}

// onSignal stops the run on the first signal and lets the main goroutine
// finish the command in flight and clean up; if that takes more than a
// minute, or a second signal comes, it cleans up itself and exits.
func onSignal(b *bench, cancel context.CancelFunc, finished <-chan struct{}) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	select {
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "bench: %v: stopping after the command in flight, then removing everything started\n", s)
	case <-finished:
		return
	}
	cancel()
	select {
	case <-finished:
		return
	case <-sigs:
	case <-time.After(time.Minute):
	}
	b.cleanup()
	os.Exit(130)
}

func parseOnly(s string) (map[string]bool, error) {
	want := map[string]bool{}
	if s == "" {
		for _, n := range rowNames {
			want[n] = true
		}
		return want, nil
	}
	for _, n := range strings.Split(s, ",") {
		ok := false
		for _, known := range rowNames {
			ok = ok || known == n
		}
		if !ok {
			return nil, fmt.Errorf("-only: unknown row %q (rows: %s)", n, strings.Join(rowNames, ","))
		}
		want[n] = true
	}
	return want, nil
}

// runAll runs the rows in the table's order of cost: the quick latency rows
// first, the growing population last.
func (b *bench) runAll(ctx context.Context, want map[string]bool, scale int) []Row {
	var rows []Row
	step := func(name string, f func(context.Context) Row) {
		if want[name] && ctx.Err() == nil {
			fmt.Fprintf(logw, "bench: %s\n", name)
			rows = append(rows, f(ctx))
		}
	}
	steps := func(name string, f func(context.Context) []Row) {
		if want[name] && ctx.Err() == nil {
			fmt.Fprintf(logw, "bench: %s\n", name)
			rows = append(rows, f(ctx)...)
		}
	}
	steps("start", b.startRow)
	step("exec", b.execRow)
	steps("exit", b.exitRows)
	steps("logs", b.logsRows)
	steps("floor", b.floorRows)
	steps("tracer", b.tracerRows)
	if want["podman"] && ctx.Err() == nil {
		fmt.Fprintf(logw, "bench: podman\n")
		rows = append(rows, b.podmanRows(ctx)...)
	}
	if want["upgrade"] && ctx.Err() == nil {
		fmt.Fprintf(logw, "bench: upgrade\n")
		rows = append(rows, b.upgradeRows(ctx)...)
	}
	if !(want["memory"] || want["reattach"] || want["scale"]) || ctx.Err() != nil {
		return rows
	}
	var conmon *memSet
	conmonNote := ""
	if want["memory"] {
		fmt.Fprintf(logw, "bench: conmon baseline (%d containers)\n", memWhen)
		var err error
		conmon, conmonNote, err = b.conmonBaseline(ctx)
		if err != nil {
			conmon, conmonNote = nil, err.Error()
			fmt.Fprintf(logw, "bench: conmon baseline: %v\n", err)
		}
	}
	if !want["scale"] && !want["reattach"] {
		scale = memWhen
	}
	pr := b.runPass(ctx, scale, want["memory"], conmon, conmonNote)
	for _, r := range pr {
		keep := want["scale"] && strings.HasPrefix(r.Name, "scale") ||
			want["memory"] && strings.HasPrefix(r.Name, "memory") ||
			want["reattach"] && strings.HasPrefix(r.Name, "reattach") || r.Error != ""
		if keep {
			rows = append(rows, r)
		}
	}
	return rows
}
