package oci

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by Runtime methods wrap at most one of
// them; test with errors.Is.
var (
	// ErrNotFound means the runtime reported that the container does not
	// exist (in the runtime's --root).
	ErrNotFound = errors.New("container does not exist")
	// ErrAlreadyExists means the runtime refused to create a container
	// because one with the same id already exists.
	ErrAlreadyExists = errors.New("container already exists")
	// ErrNotRunning means the operation needs a running (or paused)
	// container or process, and it has already stopped; for example kill
	// of a stopped container.
	ErrNotRunning = errors.New("container is not running")
	// ErrBinaryNotFound means the runtime binary (Runtime.Command) could
	// not be found or is not executable. The error wrapping it names the
	// binary and says how to fix it.
	ErrBinaryNotFound = errors.New("OCI runtime binary not found")
	// ErrInvalidID means a container id was rejected before running the
	// runtime: it must be non-empty, use only [A-Za-z0-9_+.-] and not be
	// "." or "..". (runc enforces the same rule; crun 1.8 does not, and
	// would build paths from ids like "../x".)
	ErrInvalidID = errors.New("invalid container id")
	// ErrCommandNotFound means the runtime could not find the process's
	// executable in the container (create, or exec).
	ErrCommandNotFound = errors.New("executable not found in the container")
	// ErrCommandNotExecutable means the process's executable was found
	// but could not be run: no execute permission, or not a file.
	ErrCommandNotExecutable = errors.New("executable cannot be run")
)

// RuntimeError is returned when the runtime binary ran and exited with a
// non-zero status.
type RuntimeError struct {
	// Command is the base name of the runtime binary, e.g. "runc" or "crun".
	Command string
	// Op is the subcommand, e.g. "create", "kill".
	Op string
	// ID is the container id, or "" for calls without one (list, version).
	ID string
	// Status is the runtime's exit status: its exit code, or 128+N if it
	// was killed by signal N.
	Status int
	// Msg is the last error message from the runtime's --log file (JSON
	// lines), or failing that a summary of its stderr when stderr was
	// captured (not for create and exec, whose stdio belongs to the
	// container). It is "" if the runtime said nothing.
	Msg string
}

// Error returns a single line: "<command> <op> <id>: <message>", with
// "exit status N" as the message when the runtime gave none.
func (e *RuntimeError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", e.Status)
	}
	return opPrefix(e.Command, e.Op, e.ID) + ": " + msg
}

// Unwrap returns the sentinel (ErrNotFound, ErrAlreadyExists,
// ErrNotRunning, ErrCommandNotFound, ErrCommandNotExecutable) matching
// Msg, or nil if none matches.
func (e *RuntimeError) Unwrap() error {
	return classify(e.Msg)
}

// opPrefix formats "<command> <op> [<id>]" for error messages.
func opPrefix(command, op, id string) string {
	if id == "" {
		return command + " " + op
	}
	return command + " " + op + " " + id
}

// messageRule maps a runtime message to a sentinel. A message matches when
// it contains every string in all (compared lower-case).
type messageRule struct {
	all []string
	err error
}

// messageRules is the only place where runtime message text is interpreted.
// Order matters: the first match wins. Messages observed with runc 1.1.5 and
// crun 1.8.1 unless noted.
var messageRules = []messageRule{
	// runc: "container does not exist", "exec failed: container does not exist".
	// crun >= 1.9: "container `c1` does not exist: ..." (from crun's status.c).
	{[]string{"container", "does not exist"}, ErrNotFound},
	// crun 1.8 state/start/kill/pause/resume/exec of a missing id:
	// "error opening file `/run/crun/c1/status`: No such file or directory".
	{[]string{"error opening file `", "/status`: no such file or directory"}, ErrNotFound},
	// crun 1.8 delete (without --force) of a missing id:
	// "cannot open directory '/run/crun/c1': No such file or directory".
	{[]string{"cannot open directory", "no such file or directory"}, ErrNotFound},
	// runc 1.1: "runc create failed: container with given ID already exists";
	// runc 1.0: "container with id exists: c1".
	// crun: "container `c1` already exists".
	{[]string{"container with given id already exists"}, ErrAlreadyExists},
	{[]string{"container with id exists"}, ErrAlreadyExists},
	{[]string{"container `", "` already exists"}, ErrAlreadyExists},
	// runc kill/pause of a stopped container: "container not running".
	// runc (older, Go's os.ErrProcessDone): "process already finished".
	{[]string{"container not running"}, ErrNotRunning},
	{[]string{"process already finished"}, ErrNotRunning},
	// runc start of a stopped container.
	{[]string{"cannot start a container that has stopped"}, ErrNotRunning},
	// runc exec in a stopped container.
	{[]string{"cannot exec in a stopped container"}, ErrNotRunning},
	// crun pause/resume/exec: "the container `c1` is not running";
	// crun start: "container `c1` is not running".
	{[]string{"container `", "` is not running"}, ErrNotRunning},
	// crun kill of a stopped container: "kill container: No such process",
	// or "open pidfd: No such process" once its init has been reaped.
	{[]string{"no such process"}, ErrNotRunning},
	// The process's executable, at create or exec. runc:
	// `exec: "x": executable file not found in $PATH`,
	// `exec: "/x": stat /x: no such file or directory`,
	// `exec: "/etc": permission denied`. crun:
	// "executable file `x` not found in $PATH: No such file or directory",
	// "open executable: Permission denied" (or "Operation not permitted"
	// for a folder).
	{[]string{`exec: "`, "executable file not found"}, ErrCommandNotFound},
	{[]string{`exec: "`, "no such file or directory"}, ErrCommandNotFound},
	{[]string{"executable file `", "` not found"}, ErrCommandNotFound},
	{[]string{`exec: "`, "permission denied"}, ErrCommandNotExecutable},
	{[]string{"open executable: "}, ErrCommandNotExecutable},
}

// classify maps a runtime error message to ErrNotFound, ErrAlreadyExists or
// ErrNotRunning, or returns nil if the message matches none of them.
func classify(msg string) error {
	m := strings.ToLower(msg)
rules:
	for _, rule := range messageRules {
		for _, s := range rule.all {
			if !strings.Contains(m, s) {
				continue rules
			}
		}
		return rule.err
	}
	return nil
}

// maxMsgLen bounds the length of a message taken from the runtime.
const maxMsgLen = 2048

// logEntry is one line of the runtime's --log-format json output. runc
// writes {"level","msg","time"}; crun writes {"msg","level","time"}.
type logEntry struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// lastLogError returns the message of the last error-level entry
// (error, fatal, panic) in a --log-format json log, or "" if there is none.
// Lines that are not JSON are treated as error messages, since a runtime
// only writes them when something went wrong before logging was set up.
func lastLogError(log []byte) string {
	var last string
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e logEntry
		if err := json.Unmarshal(line, &e); err != nil {
			last = string(line)
			continue
		}
		switch strings.ToLower(e.Level) {
		case "error", "fatal", "panic":
			if m := oneLine(e.Msg); m != "" {
				last = m
			}
		}
	}
	return oneLine(last)
}

// oneLine joins the non-empty trimmed lines of s with "; " and bounds the
// result to maxMsgLen bytes, so that errors stay on a single line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	out := strings.Join(parts, "; ")
	if len(out) > maxMsgLen {
		out = strings.ToValidUTF8(out[:maxMsgLen], "") + "..."
	}
	return out
}
