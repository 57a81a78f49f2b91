package main

import (
	"context"
	"errors"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/runtime"
)

// Adding a command
//
// 1. Write the body as a plain function, cmdNAME(ctx, g, parsed values...)
//    error, that returns usagef(...) for a mistake in the call (exit 2),
//    exitError{status} to exit with a process's status, or any other error
//    (one line on stderr: what went wrong and what to do; exit 1).
// 2. Beside it write NAMECmd(g *globals) *cobra.Command: Use (the name and
//    its arguments), Short (one line, capitalised, no full stop), Long if
//    there is more to say, Example (required: TestHelpEveryCommand checks
//    it), Args (oneID, someIDs, noArgs or a function returning usagef),
//    ValidArgsFunction (g.completeIDs(filter) completes container IDs from
//    the root), the flags (each with a description; its default is shown),
//    and RunE calling the body. simpleCmd does all of it for a command
//    that takes one ID and no flags.
// 3. markChildStatus(cmd) if its exit status is the container's or the
//    process's (then tether's own failures exit 125, 126, 127);
//    markForwardsSignals(cmd) if it forwards SIGINT/SIGTERM itself.
// 4. Add NAMECmd to commandList, run 'make docs', and add a row to the
//    README's command table.

// commandList is every command, in the order 'tether --help' lists them.
func commandList(g *globals) []*cobra.Command {
	return []*cobra.Command{
		bundleCmd(g),
		createCmd(g),
		startCmd(g),
		runCmd(g),
		execCmd(g),
		killCmd(g),
		waitCmd(g),
		stateCmd(g),
		inspectCmd(g),
		listCmd(g),
		psCmd(g),
		topCmd(g),
		statsCmd(g),
		updateCmd(g),
		logsCmd(g),
		attachCmd(g),
		pauseCmd(g),
		resumeCmd(g),
		stopCmd(g),
		upgradeCmd(g),
		deleteCmd(g),
		eventsCmd(g),
		checkpointCmd(g),
		restoreCmd(g),
		versionCmd(g),
	}
}

// extraCommands are added by build-tagged files (gendocs.go).
var extraCommands []func(*globals) *cobra.Command

// newRoot builds the command tree on g.
func newRoot(g *globals) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "tether",
		Short: "Run OCI containers under detached shims that outlive their manager",
		Long: "tether runs OCI containers (with runc or crun) through one small detached shim per\n" +
			"container, so containers keep running while no tether command runs, and every command\n" +
			"finds them again from the runtime root.",
		Example: "  tether run -d c1 -- sh -c 'echo hi; sleep 1000'\n  tether ps\n  tether logs c1\n  tether rm -f c1",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := "unknown command " + quote(args[0])
			if near := nearestCommand(cmd, args[0]); near != "" {
				msg += ": did you mean " + quote(near) + "?"
			}
			return usageError{error: errors.New(msg), noUsage: true}
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				return cmdVersion(cmd.Context(), g, "")
			}
			return cmd.Help()
		},
		PersistentPreRunE:          g.prepare,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		SilenceUsage:               true,
		CompletionOptions:          cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	g.register(root.PersistentFlags())
	root.Flags().BoolVar(&showVersion, "version", false, "print the version of tether, its protocols and the OCI runtime")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(commandList(g)...)
	for _, extra := range extraCommands {
		root.AddCommand(extra(g))
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = "  source <(tether completion bash)\n  tether completion zsh > \"${fpath[1]}/_tether\"\n" +
				"  tether completion fish > ~/.config/fish/completions/tether.fish"
			for _, sub := range c.Commands() {
				sub.Example = "  tether completion " + sub.Name()
			}
		}
		if c.Name() == "help" {
			c.Example = "  tether help run"
		}
	}
	return root
}

func quote(s string) string { return "\"" + s + "\"" }

// Annotations on commands.
const (
	annChildStatus     = "tether/child-status"
	annForwardsSignals = "tether/forwards-signals"
)

// markChildStatus says cmd's exit status is the container's or process's.
func markChildStatus(cmd *cobra.Command) *cobra.Command { return annotate(cmd, annChildStatus) }

// markForwardsSignals says cmd forwards SIGINT and SIGTERM itself.
func markForwardsSignals(cmd *cobra.Command) *cobra.Command { return annotate(cmd, annForwardsSignals) }

func annotate(cmd *cobra.Command, key string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[key] = "true"
	return cmd
}

func childStatus(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations[annChildStatus] != ""
}

func forwardsSignals(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations[annForwardsSignals] != ""
}

// idFilter picks the containers whose IDs complete a command's argument;
// nil takes every one.
type idFilter func(*runtime.State) bool

// withStatus picks the containers in one of statuses.
func withStatus(statuses ...string) idFilter {
	return func(st *runtime.State) bool {
		for _, s := range statuses {
			if st.Status == s {
				return true
			}
		}
		return false
	}
}

// completeIDs completes container IDs from the root (--root as given on
// the command line being completed), leaving out those already typed. It
// never adopts: completing must not start shims.
func (g *globals) completeIDs(keep idFilter) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if cmd.Args != nil && cmd.ValidateArgs(append(args, "x")) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp // takes no more IDs
		}
		m, err := runtime.New(runtime.Opts{Root: g.root, Runtime: g.runtime, NoAdopt: true})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		states, err := m.List(context.Background())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		typed := map[string]bool{}
		for _, a := range args {
			typed[a] = true
		}
		var ids []cobra.Completion
		for _, st := range states {
			if typed[st.ID] || !strings.HasPrefix(st.ID, toComplete) || (keep != nil && !keep(st)) {
				continue
			}
			ids = append(ids, cobra.CompletionWithDesc(st.ID, st.Status))
		}
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}
