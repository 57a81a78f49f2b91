//go:build gendocs

package main

import "github.com/spf13/cobra"

// With the gendocs build tag (make docs), tether has a hidden command
// that writes the CLI reference: tether gendocs DIR.
func init() {
	extraCommands = append(extraCommands, func(*globals) *cobra.Command {
		return &cobra.Command{
			Use: "gendocs DIR", Hidden: true, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return writeDocs(args[0]) },
		}
	})
}
