// Command tether is a daemonless manager for containers run through
// tether-shim. Every call loads the containers it needs from the runtime
// root, so each one exercises the reattach path.
//
// The command line is built with github.com/spf13/cobra (cli.go); each
// command's body is a plain function next to its wiring.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tether-run/tether/runtime"
)

// exitError carries a process's exit status out of a command.
type exitError struct{ status int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// Tether's own failures exit with 1, or with 125 in the commands whose exit
// status is the container's (run, exec, wait, attach), as podman does; there
// a process whose executable is not in the container gives 127, and one
// that cannot be run 126, as shells and podman do. A mistake in how tether
// was called exits with 2.
const (
	exitFailure        = 1
	exitUsage          = 2
	exitFailureInChild = 125
	exitNoExec         = 126
	exitNoCommand      = 127
)

// globals are the flags every command takes, before or after its name.
type globals struct {
	root, runtime, logLevel, logFormat string
	shimDebug, noAdopt                 bool

	stdout, stderr io.Writer
	stopSignals    func() // ends the signal context set up for the command
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process's exit status.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if g.stopSignals != nil {
		g.stopSignals()
	}
	return report(cmd, err, stderr)
}

// prepare runs before every command: logging, and a context that ends on
// SIGINT or SIGTERM, except for the commands that forward signals to a
// container themselves.
func (g *globals) prepare(cmd *cobra.Command, _ []string) error {
	if err := g.setupLogging(g.stderr); err != nil {
		return usageError{error: err}
	}
	if forwardsSignals(cmd) {
		cmd.SetContext(context.Background())
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	cmd.SetContext(ctx)
	g.stopSignals = stop
	return nil
}

// report prints err as one line naming the command and returns the exit
// status: the process's for an exitError, 2 for a usage mistake, else 1
// (125, 126 or 127 in a command whose status is the container's).
func report(cmd *cobra.Command, err error, stderr io.Writer) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.status
	}
	if err == nil {
		return 0
	}
	var ar errAlreadyReported
	if errors.As(err, &ar) {
		return exitFailure
	}
	name := commandName(cmd)
	msg := oneLine(err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %s%s\n", name, msg, usageHint(cmd, ue))
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	switch {
	case !childStatus(cmd):
		return exitFailure
	case errors.Is(err, runtime.ErrCommandNotFound):
		return exitNoCommand
	case errors.Is(err, runtime.ErrCommandNotExecutable):
		return exitNoExec
	}
	return exitFailureInChild
}

// commandName is "tether" or "tether NAME", NAME as the user typed it
// (an alias such as rm stays rm).
func commandName(cmd *cobra.Command) string {
	if cmd == nil || !cmd.HasParent() {
		return "tether"
	}
	name := cmd.CalledAs()
	if name == "" {
		name = cmd.Name()
	}
	return "tether " + name
}

// usageHint ends a usage error's line: the usage, and where the help is.
func usageHint(cmd *cobra.Command, ue usageError) string {
	if cmd == nil || !cmd.HasParent() || ue.noUsage {
		return " (see 'tether help')"
	}
	return fmt.Sprintf("; usage: %s (see 'tether %s --help')", strings.TrimSpace(cmd.UseLine()), cmd.Name())
}

// register defines the global flags on fs.
func (g *globals) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.root, "root", envOr("TETHER_ROOT", ""), "runtime root, or $TETHER_ROOT (default "+runtime.DefaultRoot+", or $XDG_RUNTIME_DIR/tether for a non-root user)")
	fs.StringVar(&g.runtime, "runtime", envOr("TETHER_RUNTIME", "runc"), "OCI runtime binary (runc or crun), or $TETHER_RUNTIME")
	fs.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&g.shimDebug, "shim-debug", false, "new shims log at debug level")
	fs.BoolVar(&g.noAdopt, "no-adopt", false, "never start a shim for a container whose shim died while it runs (report it unknown)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (g *globals) setupLogging(stderr io.Writer) error {
	lvl, err := logrus.ParseLevel(g.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	logrus.SetLevel(lvl)
	logrus.SetOutput(stderr)
	switch g.logFormat {
	case "text":
		logrus.SetFormatter(&logrus.TextFormatter{})
	case "json":
		logrus.SetFormatter(&logrus.JSONFormatter{})
	default:
		return fmt.Errorf("--log-format %q: use text or json", g.logFormat)
	}
	return nil
}

func (g *globals) manager() (*runtime.Manager, error) {
	return runtime.New(runtime.Opts{Root: g.root, Runtime: g.runtime, ShimDebug: g.shimDebug, NoAdopt: g.noAdopt,
		ShortLived: true}) // one command per process: shims started without the helper
}
