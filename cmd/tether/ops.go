package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/runtime"
)

func eventsCmd(g *globals) *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [flags]",
		Short: "Stream what happens to the containers of the root",
		Long: "Print the events every shim of the root journals (created, started, restored, paused,\n" +
			"resumed, exec_started, exec_exited, exited with its status and OOM flag, oom, stop_signaled,\n" +
			"checkpointed, adopted, deleted) as they happen, until interrupted or --until. --since\n" +
			"first replays what happened since then, also while no tether command ran; exits come back\n" +
			"from the containers' exit records even when the journal lost them.",
		Example: "  tether events\n  tether events --since 10m --until 0s --format json\n  tether events --filter id=c1\n" +
			"  tether events --format '{{.Type}} {{.ID}} {{.ExitStatus}}'",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdEvents(cmd.Context(), g, cmd.OutOrStdout(), since, until, format, filters)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "replay events since a time (2026-01-02T15:04:05Z, a Unix time) or a duration ago (10m)")
	cmd.Flags().StringVar(&until, "until", "", "stop at a time, or a duration ago (0s: now, after the replay)")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "id=ID: only that container's events")
	cmd.Flags().StringVar(&format, "format", "text", "text (one line per event), json (one object per line), or a Go template "+
		"such as '{{.Type}} {{.ID}}' (fields: Time, Type, ID, Exec, Pid, ExitStatus, Reason, OOMKilled, OOMKills, Signal, ImagePath, ShimPid, FromRecord)")
	return cmd
}

func cmdEvents(ctx context.Context, g *globals, w io.Writer, since, until, format string, filters []string) error {
	opts, err := eventsOpts(since, until, filters)
	if err != nil {
		return err
	}
	out, err := eventsFormat(format)
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	ch, err := m.Events(ctx, opts)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for ev := range ch {
		switch out.format {
		case "json":
			err = enc.Encode(ev)
		case "template":
			err = out.each(w, []any{ev})
		default:
			_, err = fmt.Fprintln(w, eventLine(ev))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eventsFormat reads events' --format: text, json or a Go template.
func eventsFormat(format string) (output, error) {
	switch format {
	case "text", "json":
		return output{format: format}, nil
	case "", "table":
		return output{}, usagef("--format %q: use text, json or a Go template such as '{{.Type}} {{.ID}}'", format)
	}
	return parseFormat(format)
}

// eventsOpts reads --since, --until and --filter.
func eventsOpts(since, until string, filters []string) (runtime.EventsOpts, error) {
	var opts runtime.EventsOpts
	now := time.Now()
	for _, f := range []struct {
		name, v string
		t       *time.Time
	}{{"--since", since, &opts.Since}, {"--until", until, &opts.Until}} {
		if f.v == "" {
			continue
		}
		t, err := parseSince(f.v, now)
		if err != nil {
			return opts, usagef("%s", strings.Replace(err.Error(), "--since", f.name, 1))
		}
		*f.t = t
	}
	for _, f := range filters {
		key, val, ok := strings.Cut(f, "=")
		if !ok || key != "id" || val == "" {
			return opts, usagef("--filter %q: use id=ID", f)
		}
		opts.ID = val
	}
	return opts, nil
}

// eventLine is the text form of an event: time, type, container, then
// what else it carries.
func eventLine(ev runtime.LifecycleEvent) string {
	parts := []string{ev.Time.Format(time.RFC3339Nano), ev.Type, ev.ID}
	add := func(k string, v any) { parts = append(parts, fmt.Sprintf("%s=%v", k, v)) }
	if ev.Exec != "" {
		add("exec", ev.Exec)
	}
	if ev.Pid != 0 {
		add("pid", ev.Pid)
	}
	if ev.ExitStatus != nil {
		add("exit_status", *ev.ExitStatus)
	}
	if ev.OOMKilled {
		add("oom_killed", true)
	}
	if ev.OOMKills != 0 {
		add("oom_kills", ev.OOMKills)
	}
	if ev.Signal != 0 {
		add("signal", ev.Signal)
	}
	if ev.ImagePath != "" {
		add("image_path", ev.ImagePath)
	}
	if ev.Reason != "" {
		add("reason", fmt.Sprintf("%q", ev.Reason))
	}
	if ev.FromRecord {
		add("from_record", true)
	}
	return strings.Join(parts, " ")
}

func checkpointCmd(g *globals) *cobra.Command {
	var image string
	var leave bool
	cmd := &cobra.Command{
		Use:   "checkpoint [flags] ID",
		Short: "Dump a running container with CRIU",
		Long: "Dump a running container with CRIU through its OCI runtime into --image-path (default\n" +
			"ROOT/.checkpoints/ID) and print that folder. Without --leave-running the container ends once\n" +
			"dumped (137, reason \"checkpointed to DIR\"). 'tether restore' makes a new container from it.",
		Example: "  tether checkpoint --image-path /srv/ckpt/c1 c1\n  tether checkpoint --leave-running c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(withStatus("running")),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadOne(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			done := busy(g.stderr, "checkpointing "+args[0])
			dir, err := c.Checkpoint(cmd.Context(), runtime.CheckpointOpts{ImagePath: image, LeaveRunning: leave})
			done()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&image, "image-path", "", "folder for CRIU's images (default ROOT/.checkpoints/ID)")
	cmd.Flags().BoolVar(&leave, "leave-running", false, "keep the container running after the dump")
	return cmd
}

func restoreCmd(g *globals) *cobra.Command {
	var image, bundleDir string
	cmd := &cobra.Command{
		Use:   "restore [flags] ID",
		Short: "Make a new running container from a checkpoint",
		Long: "Make container ID from the checkpoint in --image-path, under a shim of its own, with the\n" +
			"OCI runtime's restore: it runs at once, its output goes to its own log, and it is a\n" +
			"container like any other from then on. --bundle defaults to the checkpointed container's.",
		Example: "  tether restore --image-path /srv/ckpt/c1 c2\n  tether restore --image-path /srv/ckpt/c1 --bundle /srv/b c3",
		Args:    oneID, ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if image == "" {
				return usagef("restore needs --image-path: the folder 'tether checkpoint' printed")
			}
			m, err := g.manager()
			if err != nil {
				return err
			}
			done := busy(g.stderr, "restoring "+args[0])
			_, err = m.Restore(cmd.Context(), args[0], image, runtime.RestoreOpts{Bundle: bundleDir})
			done()
			return err
		},
	}
	cmd.Flags().StringVar(&image, "image-path", "", "the checkpoint's folder (required)")
	cmd.Flags().StringVar(&bundleDir, "bundle", "", "bundle of the new container (default: the checkpointed one's)")
	return cmd
}
