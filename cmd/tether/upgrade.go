package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/runtime"
)

func upgradeCmd(g *globals) *cobra.Command {
	var shim string
	var all bool
	cmd := &cobra.Command{
		Use:   "upgrade [flags] (--all | ID...)",
		Short: "Replace the shims of running containers with a new tether-shim, in place",
		Long: "Each container's shim execs the new binary (--shim, default the tether-shim beside tether)\n" +
			"in place: same pid, so the container and its processes are untouched; the new binary first\n" +
			"checks that it can take over, and a refusal leaves the old one serving. Prints the binary and\n" +
			"version before and after per container. Waits in flight carry on; a live stream (run, exec\n" +
			"or attach in the foreground) is cut and finishes from the log.",
		Example: "  tether upgrade c1\n  tether upgrade --all\n  tether upgrade --shim /usr/local/bin/tether-shim --all",
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("give --all or container IDs, not both")
			case !all && len(args) == 0:
				return usagef("give the containers to upgrade, or --all")
			}
			return nil
		},
		ValidArgsFunction: g.completeIDs(withStatus("running", "paused", "created", "stopped")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdUpgrade(cmd.Context(), g, args, shim, all)
		},
	}
	cmd.Flags().StringVar(&shim, "shim", "", "the new tether-shim binary (default: the one beside tether)")
	cmd.Flags().BoolVar(&all, "all", false, "upgrade the shim of every container in the root")
	return cmd
}

// cmdUpgrade upgrades each container's shim, a few at a time.
func cmdUpgrade(ctx context.Context, g *globals, ids []string, shim string, all bool) error {
	m, err := g.manager()
	if err != nil {
		return err
	}
	if all {
		if ids, err = shimIDs(ctx, m); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
	}
	var mu sync.Mutex
	up := func(ctx context.Context, id string) error {
		c, err := m.Load(ctx, id)
		if err != nil {
			return err
		}
		u, err := c.Upgrade(ctx, shim)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(g.stdout, "%s: shim pid %d %s (%s) -> %s (%s)\n", id, u.ShimPid,
			u.From.Binary, u.From.Version, u.To.Binary, u.To.Version)
		return nil
	}
	if len(ids) == 1 {
		return up(ctx, ids[0])
	}
	return forEach(ctx, g, "upgrading", ids, up)
}

// shimIDs lists the containers a shim serves (every state but unknown:
// a stopped container's shim serves it until it is deleted).
func shimIDs(ctx context.Context, m *runtime.Manager) ([]string, error) {
	states, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, st := range states {
		if st.Status != runtime.StatusUnknown && st.ShimPid > 0 {
			ids = append(ids, st.ID)
		}
	}
	return ids, nil
}
