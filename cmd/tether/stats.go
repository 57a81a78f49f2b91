package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/runtime"
)

// statsInterval is how often stats samples, as docker stats.
const statsInterval = time.Second

func statsCmd(g *globals) *cobra.Command {
	var format string
	var noStream bool
	cmd := &cobra.Command{
		Use:   "stats [flags] ID...",
		Short: "Show containers' CPU, memory, pids and block IO use, live",
		Long: "Show each container's use of its cgroup as docker stats does: CPU % (100% is one CPU fully\n" +
			"used, over the last second), memory usage (without inactive page cache) against its limit\n" +
			"(the host's memory when it has none), pids against their limit, and bytes read and written\n" +
			"on block devices. It samples every second and redraws until ^C; --no-stream prints one\n" +
			"sample (taken over one second) and exits. --format json prints one JSON object per\n" +
			"container and sample, one a line (see the README for its fields).",
		Example: "  tether stats c1\n  tether stats --no-stream c1 c2\n  tether stats --format json --no-stream c1",
		Args:    someIDs, ValidArgsFunction: g.completeIDs(withStatus("running", "paused")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdStats(cmd.Context(), g, args, format, noStream)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template such as '{{.ID}} {{.CPUPercent}}' "+
		"(fields: ID, Read, CPUPercent, Memory.Usage, .Limit, .Percent, .OOMKills, Pids.Current, .Limit, BlockIO.ReadBytes, .WriteBytes, Cgroup)")
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	return cmd
}

// cmdStats loads every container first (an unknown ID fails before
// anything is printed), then prints samples until ctx ends (^C) or, with
// noStream, once.
func cmdStats(ctx context.Context, g *globals, ids []string, format string, noStream bool) error {
	out, err := statsFormat(format)
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	cs := make([]*runtime.Container, len(ids))
	for i, id := range ids {
		if cs[i], err = m.Load(ctx, id); err != nil {
			return err
		}
	}
	prev, err := sampleAll(ctx, cs)
	if err != nil {
		return err
	}
	tty := out.format == "table" && !noStream && isTerminal(g.stdout)
	for {
		select {
		case <-ctx.Done():
			return nil // ^C ends a stream: not a failure
		case <-time.After(statsInterval):
		}
		cur, err := sampleAll(ctx, cs)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		rows := make([]statsRow, len(cs))
		for i := range cs {
			rows[i] = newStatsRow(cs[i].ID(), prev[i], cur[i], hostMemory())
		}
		if err := printStats(g.stdout, out, rows, tty); err != nil {
			return err
		}
		if noStream {
			return nil
		}
		prev = cur
	}
}

// sampleAll reads the metrics of every container.
func sampleAll(ctx context.Context, cs []*runtime.Container) ([]*runtime.Metrics, error) {
	out := make([]*runtime.Metrics, len(cs))
	for i, c := range cs {
		m, err := c.Metrics(ctx)
		if errors.Is(err, runtime.ErrNotFound) {
			return nil, fmt.Errorf("%w: its cgroup is gone (was it deleted?)", err)
		}
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// statsRow is one container's line of stats, and its JSON form (documented
// in the README: keep the two in step).
type statsRow struct {
	ID   string    `json:"id"`
	Read time.Time `json:"read"`
	// CPUPercent is the CPU time used between the two samples over the
	// time between them: 100 is one CPU fully used.
	CPUPercent float64      `json:"cpu_percent"`
	Memory     statsMemory  `json:"memory"`
	Pids       statsPids    `json:"pids"`
	BlockIO    statsBlockIO `json:"block_io"`
	// Cgroup is the cgroup version the numbers come from (1 or 2).
	Cgroup int `json:"cgroup_version"`
}

type statsMemory struct {
	// Usage is the working set: usage less inactive page cache, bytes.
	Usage uint64 `json:"usage"`
	// Limit is the container's limit, or the host's memory when it has
	// none (then Unlimited is true).
	Limit     uint64  `json:"limit"`
	Unlimited bool    `json:"unlimited,omitempty"`
	Percent   float64 `json:"percent"`
	OOMKills  uint64  `json:"oom_kills"`
}

type statsPids struct {
	Current uint64 `json:"current"`
	// Limit is nil when there is none.
	Limit *uint64 `json:"limit"`
}

type statsBlockIO struct {
	ReadBytes  uint64 `json:"read_bytes"`
	WriteBytes uint64 `json:"write_bytes"`
}

// newStatsRow derives a row from two samples of one container; hostMem is
// the limit shown when the container has none.
func newStatsRow(id string, prev, cur *runtime.Metrics, hostMem uint64) statsRow {
	r := statsRow{ID: id, Read: cur.Time}
	if c, p := cur.CPU, prev.CPU; c != nil && p != nil && cur.Time.After(prev.Time) && c.UsageNanos >= p.UsageNanos {
		r.CPUPercent = float64(c.UsageNanos-p.UsageNanos) / float64(cur.Time.Sub(prev.Time).Nanoseconds()) * 100
		r.Cgroup = c.Version
	}
	if m := cur.Memory; m != nil {
		r.Memory = statsMemory{Usage: m.WorkingSet(), Limit: m.Limit, OOMKills: m.OOMKills}
		if m.Limit == cgroups.Unlimited || m.Limit == 0 || (hostMem > 0 && m.Limit > hostMem) {
			r.Memory.Limit, r.Memory.Unlimited = hostMem, true
		}
		if r.Memory.Limit > 0 {
			r.Memory.Percent = float64(r.Memory.Usage) / float64(r.Memory.Limit) * 100
		}
		r.Cgroup = m.Version
	}
	if p := cur.Pids; p != nil {
		r.Pids.Current = p.Current
		if p.Limit != cgroups.Unlimited {
			limit := p.Limit
			r.Pids.Limit = &limit
		}
	}
	if io := cur.IO; io != nil {
		for _, d := range io.Devices {
			r.BlockIO.ReadBytes += d.ReadBytes
			r.BlockIO.WriteBytes += d.WriteBytes
		}
	}
	return r
}

// statsFormat reads stats' --format: table, json or a Go template.
func statsFormat(format string) (output, error) {
	if format == "" {
		return output{}, usagef("--format \"\": give table, json or a Go template such as '{{.ID}} {{.CPUPercent}}'")
	}
	out, err := parseFormat(format)
	if out.format == "" {
		out.format = "table"
	}
	return out, err
}

// printStats writes rows as JSON lines, one template line each, or as a
// table; on a terminal the table replaces the previous one.
func printStats(w io.Writer, out output, rows []statsRow, redraw bool) error {
	switch out.format {
	case "json":
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case "template":
		items := make([]any, len(rows))
		for i, r := range rows {
			items[i] = r
		}
		return out.each(w, items)
	}
	if redraw {
		fmt.Fprint(w, "\033[H\033[2J")
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tCPU %\tMEM USAGE / LIMIT\tMEM %\tPIDS\tBLOCK I/O")
	for _, r := range rows {
		pids := fmt.Sprint(r.Pids.Current)
		if r.Pids.Limit != nil {
			pids += fmt.Sprintf(" / %d", *r.Pids.Limit)
		}
		fmt.Fprintf(tw, "%s\t%.2f%%\t%s / %s\t%.2f%%\t%s\t%s / %s\n", r.ID, r.CPUPercent,
			humanBytes(r.Memory.Usage), humanBytes(r.Memory.Limit), r.Memory.Percent, pids,
			humanBytes(r.BlockIO.ReadBytes), humanBytes(r.BlockIO.WriteBytes))
	}
	return tw.Flush()
}

// humanBytes writes n in binary units, as docker stats: 0B, 512KiB, 1.5MiB.
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	return s + string(units[i]) + "iB"
}

// hostMemory is the host's RAM in bytes, 0 if unknown.
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

func updateCmd(g *globals) *cobra.Command {
	var memory, memorySwap, cpus, pids string
	cmd := &cobra.Command{
		Use:   "update [flags] ID",
		Short: "Change a running container's memory, CPU and pids limits",
		Long: "Change the limits of a running container through the OCI runtime's update (runc and crun);\n" +
			"'tether stats' shows them at once. Only the limits given change. Every value is checked\n" +
			"before anything is asked of the runtime: a bad one changes nothing. When only --memory is\n" +
			"given, the container keeps the swap it was allowed. 'max' removes a limit.",
		Example: "  tether update --memory 64m --cpus 0.5 --pids-limit 50 c1\n  tether update --memory 1g --memory-swap 2g c1\n" +
			"  tether update --cpus max c1",
		Args: oneID, ValidArgsFunction: g.completeIDs(withStatus("running", "paused", "created")),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := parseUpdate(memory, memorySwap, cpus, pids)
			if err != nil {
				return err
			}
			c, err := loadOne(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			return c.Update(cmd.Context(), r)
		},
	}
	cmd.Flags().StringVarP(&memory, "memory", "m", "", "memory limit: a size such as 64m or 1g, or max")
	cmd.Flags().StringVar(&memorySwap, "memory-swap", "", "memory plus swap limit: a size of at least --memory, or max for unlimited swap")
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPU limit in CPUs, such as 0.5, or max")
	cmd.Flags().StringVar(&pids, "pids-limit", "", "limit of processes and threads, such as 50, or max")
	return cmd
}

// parseUpdate reads update's flags into a change; a bad value or none at
// all is a usage error naming the flag.
func parseUpdate(memory, memorySwap, cpus, pids string) (*runtime.Resources, error) {
	var r runtime.Resources
	bytesFlag := func(name, v string, dst **int64) error {
		if v == "" {
			return nil
		}
		n, err := cgroups.ParseMemory(v)
		if err != nil {
			return valueError(name, err)
		}
		*dst = &n
		return nil
	}
	if err := bytesFlag("memory", memory, &r.Memory); err != nil {
		return nil, err
	}
	if err := bytesFlag("memory-swap", memorySwap, &r.MemorySwap); err != nil {
		return nil, err
	}
	if cpus != "" {
		q, err := cgroups.ParseCPUs(cpus)
		if err != nil {
			return nil, valueError("cpus", err)
		}
		r.CPU = &q
	}
	if pids != "" {
		n, err := cgroups.ParsePids(pids)
		if err != nil {
			return nil, valueError("pids-limit", err)
		}
		r.Pids = &n
	}
	if r.Empty() {
		return nil, usagef("nothing to change: give --memory, --memory-swap, --cpus or --pids-limit")
	}
	if err := r.Validate(); err != nil {
		return nil, valueError("memory-swap", err)
	}
	return &r, nil
}

// valueError is the usage error for a bad value of --flag: the parser's
// message without its sentinel's words.
func valueError(flag string, err error) error {
	return usagef("--%s: %s", flag, strings.ReplaceAll(err.Error(), cgroups.ErrInvalid.Error()+": ", ""))
}

func topCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "top [flags] ID",
		Short: "List a container's processes",
		Long: "List the processes of a container, as docker top: host pid, parent pid, user (named from the\n" +
			"container's /etc/passwd), CPU time used and command line.",
		Example: "  tether top c1\n  tether top --format json c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(withStatus("running", "paused")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdTop(cmd.Context(), g, args[0], format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json (an array of objects: pid, ppid, uid, user, cpu_time_ns, command)")
	return cmd
}

func cmdTop(ctx context.Context, g *globals, id, format string) error {
	if format != "table" && format != "json" {
		return usagef("--format %q: give table or json", format)
	}
	c, err := loadOne(ctx, g, id)
	if err != nil {
		return err
	}
	ps, err := c.Top(ctx)
	if err != nil {
		return err
	}
	if format == "json" {
		if ps == nil {
			ps = []runtime.Process{}
		}
		return printJSON(g.stdout, ps)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "PID\tPPID\tUSER\tTIME\tCOMMAND")
	for _, p := range ps {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", p.Pid, p.PPid, p.User, cpuTime(p.CPUTime), p.Command)
	}
	return tw.Flush()
}

// cpuTime writes d as ps does: [DD-]HH:MM:SS.
func cpuTime(d time.Duration) string {
	s := int64(d / time.Second)
	days, h, m := s/86400, s/3600%24, s/60%60
	if days > 0 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", days, h, m, s%60)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, s%60)
}
