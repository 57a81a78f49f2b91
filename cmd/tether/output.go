package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/runtime"
)

// formatHelp describes --format where it takes a template.
const formatHelp = "table, json, or a Go template such as '{{.ID}} {{.Status}}' (fields: ID, Status, Pid, ShimPid, Bundle, CreatedAt, ExitStatus, ExitedAt, Reason, AdoptedAt, Execs, AutoRemove, Removed)"

// output is how a list of states is printed: a table, JSON, or a Go
// template per item.
type output struct {
	format string
	tmpl   *template.Template
}

// parseFormat reads --format: "table" (or ""), "json", or a template.
func parseFormat(format string) (output, error) {
	switch format {
	case "", "table", "json":
		return output{format: format}, nil
	}
	t, err := template.New("format").Funcs(template.FuncMap{"json": toJSON}).Parse(format)
	if err != nil {
		return output{}, usagef("--format: %v: use table, json or a Go template such as '{{.ID}} {{.Status}}'", err)
	}
	return output{format: "template", tmpl: t}, nil
}

// toJSON is the template function json, as docker's.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// each prints one line per item through the template.
func (o output) each(w io.Writer, items []any) error {
	for _, it := range items {
		var b strings.Builder
		if err := o.tmpl.Execute(&b, it); err != nil {
			return fmt.Errorf("--format: %v", err)
		}
		fmt.Fprintln(w, b.String())
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listFlags are the options of list and ps.
type listFlags struct {
	format     string
	quiet, all bool
}

func listCmd(g *globals) *cobra.Command {
	var o listFlags
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List every container",
		Example: "  tether list\n  tether list --format json\n" +
			"  tether list --format '{{.ID}} {{.Status}} {{.ExitStatus}}'",
		Args: noArgs, ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.all = true
			return cmdList(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringVar(&o.format, "format", "table", formatHelp)
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print IDs only")
	return cmd
}

func psCmd(g *globals) *cobra.Command {
	var o listFlags
	cmd := &cobra.Command{
		Use:   "ps [flags]",
		Short: "List running and paused containers (every container with -a), as docker ps",
		Example: "  tether ps\n  tether ps -a\n  tether ps -aq\n" +
			"  tether ps -a --format '{{.ID}} {{.Status}}'",
		Args: noArgs, ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdList(cmd.Context(), g, o)
		},
	}
	cmd.Flags().BoolVarP(&o.all, "all", "a", false, "show every container, also created, stopped and unknown ones")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print IDs only")
	cmd.Flags().StringVar(&o.format, "format", "table", formatHelp)
	return cmd
}

func cmdList(ctx context.Context, g *globals, o listFlags) error {
	out, err := parseFormat(o.format)
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	states, err := m.List(ctx)
	if err != nil {
		return err
	}
	for _, st := range states {
		stateHint(st)
	}
	if !o.all {
		states = filterStates(states, "running", "paused")
	}
	switch {
	case o.quiet:
		for _, st := range states {
			if !st.Removed { // gone: no ID to pass on (rm -f $(tether ps -aq))
				fmt.Fprintln(g.stdout, st.ID)
			}
		}
	case out.format == "json":
		if states == nil {
			states = []*runtime.State{}
		}
		return printJSON(g.stdout, states)
	case out.format == "template":
		items := make([]any, len(states))
		for i, st := range states {
			items[i] = st
		}
		return out.each(g.stdout, items)
	default:
		printTable(g.stdout, states)
	}
	return nil
}

// filterStates keeps the states whose status is one of statuses.
func filterStates(states []*runtime.State, statuses ...string) []*runtime.State {
	var out []*runtime.State
	for _, st := range states {
		for _, s := range statuses {
			if st.Status == s {
				out = append(out, st)
				break
			}
		}
	}
	return out
}

func printTable(w io.Writer, states []*runtime.State) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPID\tSHIM PID\tEXIT\tEXECS\tCREATED\tBUNDLE")
	for _, st := range states {
		exit, created := "-", "-"
		if st.ExitStatus != nil {
			exit = fmt.Sprint(*st.ExitStatus)
			if st.OOMKilled {
				exit += " (oom)" // as docker inspect's OOMKilled
			}
		}
		if st.CreatedAt != nil {
			created = st.CreatedAt.Local().Format(time.DateTime)
		}
		status := st.Status
		if st.Removed {
			status += " (removed now)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", st.ID, status, st.Pid, st.ShimPid, exit, liveExecs(st), created, st.Bundle)
	}
	tw.Flush()
}

// liveExecs counts the exec'd processes that have not exited (running or
// paused); finished ones are in 'tether state'.
func liveExecs(st *runtime.State) int {
	n := 0
	for _, e := range st.Execs {
		if e.ExitStatus == nil {
			n++
		}
	}
	return n
}

func stateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "state [flags] ID",
		Short: "Print a container's state as one JSON object",
		Long: "Print one JSON object: id, status (created, running, paused, stopped, unknown), pid,\n" +
			"shim_pid, bundle, created_at, and once stopped exit_status and exited_at; reason explains\n" +
			"an unknown status or an exit status the shim could not see; adopted_at, execs.",
		Example: "  tether state c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdState(cmd.Context(), g, args[0])
		},
	}
}

func cmdState(ctx context.Context, g *globals, id string) error {
	c, err := loadOne(ctx, g, id)
	if err != nil {
		return err
	}
	st, err := c.State(ctx)
	if err != nil {
		return err
	}
	return printJSON(g.stdout, stateHint(st))
}

func inspectCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [flags] ID...",
		Short: "Print the state of containers as a JSON array, as docker inspect",
		Long: "Print the state of each container (the object 'tether state' prints) as one JSON array, or\n" +
			"one line per container through a Go template. Every ID is tried; one not found fails the\n" +
			"command after the others are printed.",
		Example: "  tether inspect c1 c2\n  tether inspect --format '{{.Pid}}' c1",
		Args:    someIDs, ValidArgsFunction: g.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdInspect(cmd.Context(), g, args, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "json", "json, or a Go template such as '{{.Status}}'")
	return cmd
}

func cmdInspect(ctx context.Context, g *globals, ids []string, format string) error {
	out, err := parseFormat(format)
	if err != nil {
		return err
	}
	if out.format == "table" || out.format == "" {
		return usagef("--format %q: use json or a Go template", format)
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	var states []any
	var failed []string
	for _, id := range ids {
		st, err := inspectOne(ctx, m, id)
		if err != nil {
			fmt.Fprintf(g.stderr, "tether inspect: %v\n", oneLine(err))
			failed = append(failed, id)
			continue
		}
		states = append(states, st)
	}
	if out.format == "template" {
		err = out.each(g.stdout, states)
	} else {
		if states == nil {
			states = []any{}
		}
		err = printJSON(g.stdout, states)
	}
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return errAlreadyReported{fmt.Errorf("%d of %d not inspected: %s", len(failed), len(ids), strings.Join(failed, ", "))}
	}
	return nil
}

func inspectOne(ctx context.Context, m *runtime.Manager, id string) (*runtime.State, error) {
	c, err := m.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	st, err := c.State(ctx)
	if err != nil {
		return nil, err
	}
	return stateHint(st), nil
}

// oneLine is an error as the CLI prints it: with the command that deals
// with it (withHint), flattened to one line.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(withHint(err).Error()), "\n", " ")
}
