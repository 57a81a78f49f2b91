package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// usageError is a mistake in how a command was called.
type usageError struct{ error }

// newFlags returns a flag set for a command that also accepts the global
// flags after the command name.
type flagSet = flag.FlagSet

func newFlags(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	return fs
}

// parse parses flags anywhere among the positional arguments, up to "--".
// It returns the positional arguments and, separately, what follows "--".
func parse(fs *flag.FlagSet, args []string) (pos, rest []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, usageError{err}
		}
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			return pos, fs.Args(), nil
		}
		left := fs.Args()
		if len(left) == 0 {
			return pos, nil, nil
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

// oneID expects exactly one positional argument, the container ID.
// parseID parses args with fs and returns the one container ID they name.
func parseID(fs *flagSet, args []string) (string, error) {
	pos, _, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	return oneID(pos)
}

func oneID(pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Errorf("expected one container ID, got %d arguments", len(pos))}
	}
	return pos[0], nil
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
