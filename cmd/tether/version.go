package main

import (
	"context"
	"fmt"
	"os/exec"
	goruntime "runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/runtime"
)

// version and commit are set at build time (make build:
// -ldflags "-X main.version=... -X main.commit=...").
var (
	version = "dev"
	commit  = "unknown"
)

// versionInfo is what 'tether version' reports.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// Protocol is the shim control protocol's version, Record the version
	// of the records in a container's folder.
	Protocol int `json:"shim_protocol"`
	Record   int `json:"record"`
	// Runtime is the OCI runtime --runtime names and RuntimeVersion the
	// first line of its --version (or why it is missing).
	Runtime        string `json:"oci_runtime"`
	RuntimeVersion string `json:"oci_runtime_version"`
}

func versionCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [flags]",
		Short: "Print the version of tether, its protocols and the OCI runtime",
		Example: "  tether version\n  tether --version\n  tether version --format json\n" +
			"  tether --runtime crun version --format '{{.RuntimeVersion}}'",
		Args: noArgs, ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdVersion(cmd.Context(), g, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "json, or a Go template such as '{{.Version}}' (fields: Version, Commit, Go, Platform, Protocol, Record, Runtime, RuntimeVersion)")
	return cmd
}

func cmdVersion(ctx context.Context, g *globals, format string) error {
	out, err := parseFormat(format)
	if err != nil {
		return err
	}
	v := versionInfo{Version: version, Commit: commit, Go: goruntime.Version(),
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH,
		Protocol: runtime.ProtocolVersion, Record: runtime.RecordVersion,
		Runtime: g.runtime, RuntimeVersion: runtimeVersion(ctx, g.runtime)}
	switch out.format {
	case "json":
		return printJSON(g.stdout, v)
	case "template":
		return out.each(g.stdout, []any{v})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "tether:\t%s\n", v.Version)
	fmt.Fprintf(tw, "commit:\t%s\n", v.Commit)
	fmt.Fprintf(tw, "go:\t%s %s\n", v.Go, v.Platform)
	fmt.Fprintf(tw, "shim protocol:\t%d\n", v.Protocol)
	fmt.Fprintf(tw, "record version:\t%d\n", v.Record)
	fmt.Fprintf(tw, "OCI runtime:\t%s: %s\n", v.Runtime, v.RuntimeVersion)
	return tw.Flush()
}

// runtimeVersion is the first line of `RUNTIME --version`, or why there
// is none.
func runtimeVersion(ctx context.Context, name string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		return "not found (install it, or name another with --runtime)"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return fmt.Sprintf("%s --version failed: %v", path, err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return first + " (" + path + ")"
}
