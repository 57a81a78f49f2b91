package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// usageError is a mistake in how a command was called: it exits with 2,
// and its line ends with the command's usage (or, with noUsage, only with
// where the help is).
type usageError struct {
	error
	noUsage bool
}

func usagef(format string, args ...any) error { return usageError{error: fmt.Errorf(format, args...)} }

// flagError turns a flag parsing error into a usage error that names the
// nearest flag the command has (pflag's errors name none).
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return usageError{error: err}
	}
	name, short := ne.GetSpecifiedName(), ne.GetSpecifiedShortnames()
	if short != "" {
		// Go's flag package took -name as well as --name: say how to
		// write it.
		if len(short) > 1 && cmd.Flags().Lookup(short) != nil {
			return usagef("unknown shorthand flag %q in -%s: long flags take two dashes: --%s", name, short, short)
		}
		return usagef("unknown shorthand flag %q in -%s", name, short)
	}
	if near := nearestFlag(cmd, name); near != "" {
		return usagef("unknown flag --%s: did you mean --%s?", name, near)
	}
	return usagef("%v", err)
}

// nearestFlag is the long flag of cmd (its own or inherited) closest to
// name, within an edit distance of 2 or of which name is a prefix.
func nearestFlag(cmd *cobra.Command, name string) string {
	best, bestDist := "", 3
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && d > 1 {
			d = 2
		}
		if d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// nearestCommand is the command of root closest to name ("" if none is
// near): cobra's own suggestions, then aliases.
func nearestCommand(root *cobra.Command, name string) string {
	if s := root.SuggestionsFor(name); len(s) > 0 {
		return s[0]
	}
	for _, c := range root.Commands() {
		for _, a := range c.Aliases {
			if editDistance(name, a) <= 1 {
				return a
			}
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Positional argument checks, each giving a usage error.

// oneID: exactly one container ID.
func oneID(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("expected one container ID, got %d arguments", len(args))
	}
	return nil
}

// someIDs: one container ID or more.
func someIDs(_ *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usagef("expected at least one container ID")
	}
	return nil
}

// noArgs: none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usagef("%s takes no arguments, got %q", cmd.Name(), args)
	}
	return nil
}

// splitCommand reads the positional arguments of a command that takes a
// container ID and then a command to run in it (run, exec), in any of
// the forms today's scripts and docker users write:
//
//	ID -- CMD ARG...      (flags before ID)
//	ID CMD ARG...         (docker's form: everything after ID is the command)
//	ID FLAGS... [-- CMD]  (flags after the ID, up to --, as tether took them)
//
// needID false (run --name) means there is no ID among args. The flags
// after the ID are parsed into cmd's flag set.
func splitCommand(cmd *cobra.Command, args []string, needID bool) (id string, command []string, err error) {
	rest := args
	if needID {
		if len(args) == 0 || args[0] == "--" {
			return "", nil, usagef("expected a container ID")
		}
		id, rest = args[0], args[1:]
	}
	switch {
	case len(rest) == 0:
		return id, nil, nil
	case rest[0] == "--":
		return id, rest[1:], nil
	case !strings.HasPrefix(rest[0], "-"):
		return id, rest, nil
	}
	// Today's form: flags after the ID, up to -- (or the end: run with a
	// bundle has no command).
	dash := slices.Index(rest, "--")
	if dash < 0 {
		dash = len(rest)
	}
	fs := cmd.Flags()
	if err := fs.Parse(rest[:dash]); err != nil {
		return "", nil, flagError(cmd, err)
	}
	if fs.NArg() != 0 {
		return "", nil, usagef("unexpected %q after the flags that follow the container ID: put the command after --", fs.Args())
	}
	if dash == len(rest) {
		return id, nil, nil
	}
	return id, rest[dash+1:], nil
}

// parseSignal accepts KILL, SIGKILL, kill and 9.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d is out of range 1-64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, errors.New("unknown signal " + strconv.Quote(s) + ": use a name such as TERM or KILL, or a number")
}
