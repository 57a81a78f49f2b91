// Command tether is a daemonless manager for containers run through
// tether-shim. Every call loads the containers it needs from the runtime
// root, so each one exercises the reattach path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/runtime"
)

// exitError carries a process's exit status out of a command.
type exitError struct{ status int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// Tether's own failures exit with 1, or with 125 in the commands whose exit
// status is the container's (run, exec, wait, attach), as podman does; there
// a process whose executable is not in the container gives 127, and one
// that cannot be run 126, as shells and podman do.
const (
	exitFailure        = 1
	exitFailureInChild = 125
	exitNoExec         = 126
	exitNoCommand      = 127
)

type globals struct {
	root, runtime, logLevel, logFormat string
	shimDebug, noAdopt                 bool
}

type command struct {
	name, usage, summary string
	childStatus          bool // the exit status is the container's
	run                  func(ctx context.Context, g *globals, args []string) error
}

var commands []*command

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{}
	fs := flag.NewFlagSet("tether", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "tether: %v: see 'tether help'\n", err)
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "--help" {
		usage(stdout)
		return 0
	}
	cmd := lookup(rest[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "tether: unknown command %q: see 'tether help'\n", rest[0])
		return 2
	}
	if err := g.setupLogging(stderr); err != nil {
		fmt.Fprintln(stderr, "tether:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	if cmd.name == "run" || cmd.name == "exec" || cmd.name == "attach" {
		stop() // these forward signals to the container themselves
		ctx = context.Background()
	} else {
		defer stop()
	}
	return report(cmd, cmd.run(ctx, g, rest[1:]), stderr)
}

func report(cmd *command, err error, stderr io.Writer) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.status
	}
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tether %s: %v: usage: tether %s %s\n", cmd.name, err, cmd.name, cmd.usage)
		return 2
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	fmt.Fprintf(stderr, "tether %s: %s\n", cmd.name, msg)
	switch {
	case !cmd.childStatus:
		return exitFailure
	case errors.Is(err, runtime.ErrCommandNotFound):
		return exitNoCommand
	case errors.Is(err, runtime.ErrCommandNotExecutable):
		return exitNoExec
	}
	return exitFailureInChild
}

func (g *globals) register(fs *flag.FlagSet) {
	// Defaults are the values already parsed, so global flags may come
	// before or after the command name.
	if g.root == "" {
		g.root, g.runtime = envOr("TETHER_ROOT", runtime.DefaultRoot), envOr("TETHER_RUNTIME", "runc")
		g.logLevel, g.logFormat = "warn", "text"
	}
	fs.StringVar(&g.root, "root", g.root, "runtime root")
	fs.StringVar(&g.runtime, "runtime", g.runtime, "OCI runtime binary")
	fs.StringVar(&g.logLevel, "log-level", g.logLevel, "log level: debug, info, warn, error")
	fs.StringVar(&g.logFormat, "log-format", g.logFormat, "log format: text or json")
	fs.BoolVar(&g.shimDebug, "shim-debug", g.shimDebug, "new shims log at debug level")
	fs.BoolVar(&g.noAdopt, "no-adopt", g.noAdopt, "never start a shim for a container whose shim died while it runs (report it unknown)")
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
	return runtime.New(runtime.Opts{Root: g.root, Runtime: g.runtime, ShimDebug: g.shimDebug, NoAdopt: g.noAdopt})
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tether [--root DIR] [--runtime NAME] [--log-level LEVEL] [--log-format text|json] [--no-adopt] COMMAND ...")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		fmt.Fprintf(w, "           tether %s %s\n", c.name, c.usage)
	}
}
