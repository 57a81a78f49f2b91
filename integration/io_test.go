package integration

// The IO suite: the output log (never blocking, exact bytes, rotation),
// logs and its options, live followers (logs -f, attach), stdin across
// manager restarts, terminals, and the descriptors a container sees. Real
// containers with runc and crun; the CLI is the manager, so killing a
// `tether logs -f` or `tether attach` child is killing the manager.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
	"golang.org/x/sys/unix"
)

// ioWait bounds every wait of this suite. It is a hang guard, not a speed
// assertion: the machine is shared with other suites.
const ioWait = 90 * time.Second

// TestIOLogChecksum: a container writes 100 MiB (text lines, empty lines,
// lines longer than a log entry, \r, NUL, random binary, no final
// newline) with no client attached; the decoded log is byte for byte what
// it wrote. Then the same while the manager (logs -f and attach children)
// is killed with SIGKILL half-way and started again: the container goes
// on, the log is still exact, and the new logs -f outputs all of it.
func TestIOLogChecksum(t *testing.T) {
	testutil.RequireRoot(t)
	data := ioGenerate(100 << 20)
	dir := ioPayloadFiles(t, data)
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		t.Run("detached", func(t *testing.T) { ioChecksumDetached(t, e, dir, data) })
		t.Run("manager-killed", func(t *testing.T) { ioChecksumManagerKilled(t, e, dir, data) })
	})
}

func ioChecksumDetached(t *testing.T, e *testutil.Env, dir string, data []byte) {
	b := e.Bundle("sh", "-c", "cat /d1 /d2; printf 'err1\\nerr2' >&2")
	ioLinkPayload(t, dir, b)
	e.MustTether("run", "-d", "--bundle", b, "ck1")
	ioWaitStatus(t, e, "ck1", 0)
	out, errOut := ioLogs(t, e, "ck1")
	ioSameBytes(t, "decoded log", out, data)
	if string(errOut) != "err1\nerr2" {
		t.Errorf("stderr decoded as %q, want %q", errOut, "err1\nerr2")
	}
	e.MustTether("delete", "ck1")
}

func ioChecksumManagerKilled(t *testing.T, e *testutil.Env, dir string, data []byte) {
	b := e.Bundle("sh", "-c", "cat /d1; echo > /half; read x < /gate; cat /d2")
	ioLinkPayload(t, dir, b)
	d2 := data[len(data)/2:]
	half, gate := ioMkfifo(t, b, "half"), ioMkfifo(t, b, "gate")
	e.MustTether("create", "--bundle", b, "ck2")
	first := []*ioProc{ioStart(t, e, nil, "logs", "-f", "ck2"), ioStart(t, e, nil, "attach", "--no-stdin", "ck2")}
	e.MustTether("start", "ck2")
	ioDrainFifo(t, half) // the container wrote the first half and waits
	testutil.Eventually(t, ioWait, "the first logs -f to output something", func() bool { return first[0].out.Len() > 0 })
	for _, p := range first {
		p.kill(t)
	}
	again := ioStart(t, e, nil, "logs", "-f", "ck2")
	attach := ioStart(t, e, nil, "attach", "--no-stdin", "ck2")
	ioOpenGate(t, gate)
	if code := again.wait(t); code != 0 {
		t.Fatalf("second logs -f exited %d: %s", code, again.err.String())
	}
	ioSameBytes(t, "logs -f after the restart", again.out.Bytes(), data)
	if code := attach.wait(t); code != 0 {
		t.Fatalf("attach exited %d, want the container's 0: %s", code, attach.err.String())
	}
	// It joined at some point of the second half (possibly after its end)
	// and may have been cut off (it then says so) if it fell behind.
	got := attach.out.Bytes()
	at := ioFind(d2, got)
	cut := strings.Contains(attach.err.String(), "tether logs ck2")
	if at < 0 || !cut && len(got) > 0 && at+len(got) != len(d2) {
		t.Errorf("attach got %d bytes, found at %d of the second half (%d bytes), cut %v: want a part of it that reaches its end unless cut", len(got), at, len(d2), cut)
	}
	ioWaitStatus(t, e, "ck2", 0)
	out, _ := ioLogs(t, e, "ck2")
	ioSameBytes(t, "decoded log", out, data)
	e.MustTether("delete", "ck2")
}

// TestIORotation: with --log-max-size 1M --log-max-files 3 the log keeps
// its newest data in at most four files of at most 1 MiB, and logs decodes
// across them.
func TestIORotation(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		lines := ioLines(0, 80000) // 8 MB
		b := e.Bundle("cat", "/lines")
		ioWriteFile(t, filepath.Join(b, "rootfs", "lines"), lines)
		e.MustTether("create", "--log-max-size", "1M", "--log-max-files", "3", "--bundle", b, "rot")
		e.MustTether("start", "rot")
		ioWaitStatus(t, e, "rot", 0)
		dir := filepath.Join(e.Root, "rot")
		for _, name := range []string{"output.log", "output.log.1", "output.log.2", "output.log.3"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("rotated file: %v", err)
			}
			if fi.Size() > 1<<20 || fi.Size() == 0 {
				t.Errorf("%s is %d bytes, want 1..%d", name, fi.Size(), 1<<20)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "output.log.4")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("output.log.4 exists (or %v): only 3 rotated files may be kept", err)
		}
		out, _ := ioLogs(t, e, "rot")
		if !bytes.HasSuffix(lines, out) {
			t.Fatalf("decoded rotated log (%d bytes) is not the end of the output", len(out))
		}
		if len(out) < 2<<20 || len(out) >= len(lines) {
			t.Errorf("decoded %d bytes of %d: want more than three files' worth of the newest output and less than all", len(out), len(lines))
		}
		tail, _ := ioLogs(t, e, "rot", "--tail", "3")
		if want := ioLines(79997, 80000); !bytes.Equal(tail, want) {
			t.Errorf("--tail 3 gave %q, want %q", tail, want)
		}
		e.MustTether("delete", "rot")
	})
}

// TestIOFollow: logs -f started before the output sees every line written
// after it started, follows the log across rotations (files it never saw
// whole), keeps stdout and stderr apart, and ends by itself when the
// container exits.
func TestIOFollow(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		const steps = 6
		b := e.Bundle("sh", "-c", fmt.Sprintf(
			"i=0; while [ $i -lt %d ]; do cat /chunk$i; echo err$i >&2; read x < /gate$i; i=$((i+1)); done", steps))
		var want []byte
		var gates []string // one FIFO per step: a reused one could pair with the last writer
		for i := range steps {
			chunk := ioLines(i*3000, (i+1)*3000) // 300 KB: at least one rotation each
			ioWriteFile(t, filepath.Join(b, "rootfs", fmt.Sprintf("chunk%d", i)), chunk)
			want = append(want, chunk...)
			gates = append(gates, ioMkfifo(t, b, fmt.Sprintf("gate%d", i)))
		}
		e.MustTether("create", "--log-max-size", "256K", "--log-max-files", "2", "--bundle", b, "fol")
		f := ioStart(t, e, nil, "logs", "-f", "fol")
		e.MustTether("start", "fol")
		for i := range steps {
			n := len(ioLines(0, (i+1)*3000))
			testutil.Eventually(t, ioWait, fmt.Sprintf("logs -f to show chunk %d", i), func() bool {
				return f.out.Len() >= n && strings.Count(f.err.String(), "\n") > i
			})
			ioOpenGate(t, gates[i])
		}
		if code := f.wait(t); code != 0 {
			t.Fatalf("logs -f exited %d: %s", code, f.err.String())
		}
		ioSameBytes(t, "logs -f stdout", f.out.Bytes(), want)
		if got, w := f.err.String(), "err0\nerr1\nerr2\nerr3\nerr4\nerr5\n"; got != w {
			t.Errorf("logs -f stderr %q, want %q", got, w)
		}
		out, _ := ioLogs(t, e, "fol")
		if len(out) >= len(want) || !bytes.HasSuffix(want, out) {
			t.Errorf("logs after the exit: %d bytes, want a proper suffix of the %d written (older files were rotated away)", len(out), len(want))
		}
		e.MustTether("delete", "fol")
	})
}

// TestIOLogsOptions: --tail, --since and --timestamps behave as in docker
// logs, and the container's stderr goes to stderr, its stdout to stdout,
// byte for byte (a last line without newline stays without).
func TestIOLogsOptions(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	// The gates order the lines of the two streams in the log (two pipes
	// drained apart have no order of their own).
	b := e.Bundle("sh", "-c", "echo one; echo two >&2; echo three; read x < /g1; echo four; read x < /g2; echo five >&2; read x < /g3; printf six")
	gates := []string{ioMkfifo(t, b, "g1"), ioMkfifo(t, b, "g2"), ioMkfifo(t, b, "g3")}
	e.MustTether("run", "-d", "--bundle", b, "opt")
	ioLogsShow(t, e, "opt", "one\nthree\n", "two\n")
	split := time.Now()
	ioOpenGate(t, gates[0])
	ioLogsShow(t, e, "opt", "one\nthree\nfour\n", "two\n")
	ioOpenGate(t, gates[1])
	ioLogsShow(t, e, "opt", "one\nthree\nfour\n", "two\nfive\n")
	ioOpenGate(t, gates[2])
	ioWaitStatus(t, e, "opt", 0)

	checks := []struct {
		doc            string
		args           []string
		stdout, stderr string
	}{
		{"all", nil, "one\nthree\nfour\nsix", "two\nfive\n"},
		{"tail 2 counts both streams", []string{"--tail", "2"}, "six", "five\n"},
		{"tail 3", []string{"-n", "3"}, "four\nsix", "five\n"},
		{"tail 0", []string{"--tail", "0"}, "", ""},
		{"tail past the start", []string{"--tail", "100"}, "one\nthree\nfour\nsix", "two\nfive\n"},
		{"since a time between", []string{"--since", split.Format(time.RFC3339Nano)}, "four\nsix", "five\n"},
		{"since as unix time", []string{"--since", fmt.Sprintf("%d.%09d", split.Unix(), split.Nanosecond())}, "four\nsix", "five\n"},
		{"since a duration", []string{"--since", "1h"}, "one\nthree\nfour\nsix", "two\nfive\n"},
		{"since the future", []string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, "", ""},
		{"tail then since", []string{"--tail", "4", "--since", split.Format(time.RFC3339Nano)}, "four\nsix", "five\n"},
	}
	for _, c := range checks {
		t.Run(c.doc, func(t *testing.T) {
			out, errOut := ioLogs(t, e, "opt", c.args...)
			if string(out) != c.stdout || string(errOut) != c.stderr {
				t.Errorf("logs %v: stdout %q stderr %q, want %q and %q", c.args, out, errOut, c.stdout, c.stderr)
			}
		})
	}
	t.Run("timestamps", func(t *testing.T) {
		out, errOut := ioLogs(t, e, "opt", "--timestamps")
		ioCheckStamps(t, string(out), []string{"one", "three", "four", "six"}, split)
		ioCheckStamps(t, string(errOut), []string{"two", "five"}, split)
	})
	t.Run("bad values", func(t *testing.T) {
		for _, args := range [][]string{{"--tail", "x"}, {"--since", "yesterday"}} {
			r := e.Tether(append(append([]string{"logs"}, args...), "opt")...)
			if r.Code != 2 && r.Code != 1 || !strings.Contains(r.Stderr, args[0]) {
				t.Errorf("logs %v: exit %d, stderr %q: want a failure naming %s", args, r.Code, r.Stderr, args[0])
			}
		}
	})
	e.MustTether("delete", "opt")
}

// ioLogsShow waits until the log decodes to stdout and stderr.
func ioLogsShow(t *testing.T, e *testutil.Env, id, stdout, stderr string) {
	t.Helper()
	testutil.Eventually(t, ioWait, fmt.Sprintf("the log to hold %q and %q", stdout, stderr), func() bool {
		out, errOut := ioLogs(t, e, id)
		return string(out) == stdout && string(errOut) == stderr
	})
}

// ioCheckStamps checks docker's --timestamps form: each line starts with
// an RFC 3339 UTC time with nine fraction digits and a space; the lines
// before the gate are older than split, the others newer.
func ioCheckStamps(t *testing.T, got string, texts []string, split time.Time) {
	t.Helper()
	lines := strings.SplitAfter(got, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) != len(texts) {
		t.Fatalf("--timestamps output %q: want %d lines", got, len(texts))
	}
	for i, line := range lines {
		stamp, text, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if !ok || err != nil || len(stamp) != len("2006-01-02T15:04:05.000000000Z") || !strings.HasSuffix(stamp, "Z") || text != texts[i] {
			t.Errorf("--timestamps line %q: want a fixed-width UTC time, a space and %q", line, texts[i])
			continue
		}
		early := text == "one" || text == "two" || text == "three"
		if early != ts.Before(split) {
			t.Errorf("line %q stamped %v, split at %v", text, ts, split)
		}
	}
}

// TestIOFollowers: several followers at once (two attach, two logs -f)
// all get everything; and a follower that stops reading never slows the
// container: it finishes while the follower (a foreground run) is
// stopped, and the log keeps every byte. Once resumed, the run finds it
// was cut off and finishes the output from the log; or, when the log
// rotates (and so may have lost what it did not show), says where the
// output is. Either way it exits with the container's status.
func TestIOFollowers(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		t.Run("several", func(t *testing.T) { ioSeveralFollowers(t, e) })
		t.Run("slow-caught-up", func(t *testing.T) { ioSlowFollower(t, e, false) })
		t.Run("slow-cut", func(t *testing.T) { ioSlowFollower(t, e, true) })
	})
}

func ioSeveralFollowers(t *testing.T, e *testutil.Env) {
	data := ioLines(0, 10000) // 1 MB: within any follower's allowance
	// The container says "tick" until every attach has seen one, so each
	// one is known to be attached before the data comes.
	b := e.Bundle("sh", "-c", "while [ ! -e /go ]; do echo tick; sleep 0.05; done; cat /data; echo done >&2")
	ioWriteFile(t, filepath.Join(b, "rootfs", "data"), data)
	e.MustTether("create", "--bundle", b, "many")
	var attaches, follows []*ioProc
	for range 2 {
		attaches = append(attaches, ioStart(t, e, nil, "attach", "--no-stdin", "many"))
		follows = append(follows, ioStart(t, e, nil, "logs", "-f", "many"))
	}
	e.MustTether("start", "many")
	for i, a := range attaches {
		testutil.Eventually(t, ioWait, fmt.Sprintf("attach %d to see a tick", i), func() bool {
			return strings.Contains(a.out.String(), "tick\n")
		})
	}
	ioWriteFile(t, filepath.Join(b, "rootfs", "go"), nil)
	ioWaitStatus(t, e, "many", 0)
	full, _ := ioLogs(t, e, "many")
	if !bytes.HasSuffix(full, data) {
		t.Fatalf("log does not end with the data")
	}
	for i, a := range attaches {
		if code := a.wait(t); code != 0 {
			t.Errorf("attach %d exited %d: %s", i, code, a.err.String())
		}
		got := a.out.Bytes()
		if !bytes.HasSuffix(got, data) || strings.Trim(string(got[:len(got)-len(data)]), "tick\n") != "" {
			t.Errorf("attach %d got %d bytes: want ticks then the %d bytes of data", i, len(got), len(data))
		}
		if a.err.String() != "done\n" {
			t.Errorf("attach %d stderr %q, want the container's %q", i, a.err.String(), "done\n")
		}
	}
	for i, f := range follows {
		if code := f.wait(t); code != 0 {
			t.Errorf("logs -f %d exited %d: %s", i, code, f.err.String())
		}
		ioSameBytes(t, fmt.Sprintf("logs -f %d", i), f.out.Bytes(), full)
	}
	e.MustTether("delete", "many")
}

func ioSlowFollower(t *testing.T, e *testutil.Env, rotating bool) {
	const size = 40 << 20 // well past what a follower may fall behind
	b := e.Bundle("sh", "-c", fmt.Sprintf("echo ready; read x < /gate; head -c %d /dev/zero; echo end >&2", size))
	gate := ioMkfifo(t, b, "gate")
	// A foreground run attaches before it starts the container, so it is
	// a follower from the first byte.
	args := []string{"run", "--bundle", b, "slow"}
	if rotating {
		args = append(args, "--log-max-size", "1G")
	}
	slow := ioStart(t, e, nil, args...)
	testutil.Eventually(t, ioWait, "the foreground run to show ready", func() bool {
		return slow.out.String() == "ready\n"
	})
	if err := slow.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ioOpenGate(t, gate)
	// The container must finish while its follower is stopped.
	ioWaitStatus(t, e, "slow", 0)
	want := append([]byte("ready\n"), make([]byte, size)...)
	out, errOut := ioLogs(t, e, "slow")
	ioSameBytes(t, "decoded log", out, want)
	if string(errOut) != "end\n" {
		t.Errorf("stderr decoded as %q", errOut)
	}
	if err := slow.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := slow.wait(t); code != 0 {
		t.Errorf("the slow foreground run exited %d, want the container's 0: %s", code, slow.err.String())
	}
	if rotating {
		// A log that rotates may have dropped what the run did not show:
		// it stops where it was cut and says where the output is.
		if n := slow.out.Len(); n >= len(want) {
			t.Errorf("the stopped follower got %d bytes: it should have been cut off", n)
		}
		if !strings.Contains(slow.err.String(), "tether logs slow") {
			t.Errorf("the cut-off follower did not say where the output is: %q", slow.err.String())
		}
	} else {
		// Cut off, the run finishes the output from the log.
		ioSameBytes(t, "the caught-up foreground run", slow.out.Bytes(), want)
		if slow.err.String() != "end\n" {
			t.Errorf("the caught-up run's stderr %q, want %q", slow.err.String(), "end\n")
		}
	}
	e.MustTether("delete", "slow")
}

// TestIOStdin: create -i keeps the container's stdin open across manager
// restarts: an attach sends input, is killed with SIGKILL, another attach
// sends more, and its end of input reaches the container as EOF (cat
// exits 0). A foreground run -i forwards piped input and its end.
func TestIOStdin(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		t.Run("attach-restart", func(t *testing.T) { ioStdinAcrossRestart(t, e) })
		t.Run("run", func(t *testing.T) {
			in := ioPipe(t)
			r := ioStart(t, e, in.r, "run", "-i", "--bundle", e.Bundle("cat"), "catrun")
			in.send(t, "a\n") // two writes, so the CLI forwards two reads
			testutil.Eventually(t, ioWait, "cat to echo a", func() bool { return r.out.String() == "a\n" })
			in.send(t, "b\x00\xffc")
			in.w.Close()
			if code := r.wait(t); code != 0 || r.out.String() != "a\nb\x00\xffc" {
				t.Errorf("run -i: exit %d, stdout %q, stderr %q", code, r.out.String(), r.err.String())
			}
			e.MustTether("delete", "catrun")
		})
	})
}

func ioStdinAcrossRestart(t *testing.T, e *testutil.Env) {
	b := e.Bundle("cat")
	e.MustTether("create", "-i", "--bundle", b, "cat")
	e.MustTether("start", "cat")
	in1 := ioPipe(t)
	a1 := ioStart(t, e, in1.r, "attach", "cat")
	in1.send(t, "one\n")
	testutil.Eventually(t, ioWait, "cat to echo one", func() bool { return a1.out.String() == "one\n" })
	a1.kill(t)
	in1.w.Close()
	if st := ioStatus(t, e, "cat"); st != "running" {
		t.Fatalf("after the attach was killed the container is %s, want running", st)
	}
	in2 := ioPipe(t)
	a2 := ioStart(t, e, in2.r, "attach", "cat")
	in2.send(t, "two\n")
	testutil.Eventually(t, ioWait, "cat to echo two", func() bool { return a2.out.String() == "two\n" })
	in2.w.Close() // end of input
	if code := a2.wait(t); code != 0 {
		t.Fatalf("attach exited %d after end of input, want cat's 0: %s", code, a2.err.String())
	}
	ioWaitStatus(t, e, "cat", 0)
	if out, _ := ioLogs(t, e, "cat"); string(out) != "one\ntwo\n" {
		t.Errorf("log %q, want %q", out, "one\ntwo\n")
	}
	e.MustTether("delete", "cat")
}

// TestIOTerminal: run -t -i under a pty made by the test: a typed command
// is answered, the local terminal is raw while it runs and restored on
// exit, the initial size and a resize (SIGWINCH) reach `stty size` in the
// container; the same for exec -t -i. create -t needs a terminal bundle.
func TestIOTerminal(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		t.Run("run", func(t *testing.T) {
			b := e.BundleWith(bundle.Options{Args: []string{"sh"}, Terminal: true})
			ioTerminalSession(t, e, []string{"run", "-t", "-i", "--bundle", b, "tty"}, func() int {
				return ioState(t, e, "tty").Pid
			})
			e.MustTether("delete", "tty")
		})
		t.Run("exec", func(t *testing.T) {
			b := e.Bundle("sleep", "1000")
			e.MustTether("run", "-d", "--bundle", b, "host")
			ioTerminalSession(t, e, []string{"exec", "-t", "-i", "--exec-id", "sh1", "host", "--", "sh"}, func() int {
				for _, x := range ioState(t, e, "host").Execs {
					if x.ID == "sh1" {
						return x.Pid
					}
				}
				return 0
			})
			if e.Runtime == "runc" {
				// crun 1.8.1 does not reliably apply an exec'd process's
				// consoleSize before it runs (stty size saw 0 0 in 3 of 15
				// runs here); the CLI's resize follows at once.
				ioExecStartSize(t, e, "host")
			}
			e.MustTether("delete", "--force", "host")
		})
		t.Run("bundle-must-agree", func(t *testing.T) {
			r := e.Tether("create", "-t", "--bundle", e.Bundle("true"), "noterm")
			if r.Code == 0 || !strings.Contains(r.Stderr, "tether bundle -t") {
				t.Errorf("create -t on a bundle without process.terminal: exit %d, %q", r.Code, r.Stderr)
			}
		})
	})
}

// ioTerminalSession runs args (a run -t or exec -t of sh) on a fresh pty
// and talks to the shell. pid returns the pid of the shell, whose
// terminal size is checked from outside.
func ioTerminalSession(t *testing.T, e *testutil.Env, args []string, pid func() int) {
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := master.Resize(console.WinSize{Height: 24, Width: 80}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	screen := &testutil.Buffer{}
	go io.Copy(screen, master) // ends when the master is closed
	cmd := e.Command(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	p := ioStartCmd(t, cmd, nil)

	ioType(t, master, screen, "echo hi $((6*7))\r", "hi 42")
	now, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil || now.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("local terminal not raw while the process runs: lflag %#x, %v", now.Lflag, err)
	}
	ioType(t, master, screen, "stty size\r", "24 80")

	if err := master.Resize(console.WinSize{Height: 33, Width: 101}); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	shell := pid()
	testutil.Eventually(t, ioWait, "the container's terminal to be resized", func() bool {
		ws, err := ioPtySize(shell)
		return err == nil && ws.Row == 33 && ws.Col == 101
	})
	ioType(t, master, screen, "stty size\r", "33 101")
	ioType(t, master, screen, "exit 3\r", "")
	if code := p.wait(t); code != 3 {
		t.Errorf("%s exited %d, want the shell's 3; screen %q", args[0], code, screen.String())
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil || *after != *before {
		t.Errorf("local terminal not restored: before %+v after %+v (%v)", before, after, err)
	}
}

// ioExecStartSize: exec -t starts the process with the local terminal's
// size already set (a program that looks once, at start, sees it).
func ioExecStartSize(t *testing.T, e *testutil.Env, id string) {
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := master.Resize(console.WinSize{Height: 40, Width: 120}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	screen := &testutil.Buffer{}
	go io.Copy(screen, master)
	cmd := e.Command("exec", "-t", id, "--", "stty", "size")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if code := ioStartCmd(t, cmd, nil).wait(t); code != 0 {
		t.Fatalf("exec -t stty size exited %d: %q", code, screen.String())
	}
	testutil.Eventually(t, ioWait, "stty's answer", func() bool { return strings.Contains(screen.String(), "\n") })
	if got := strings.TrimSpace(screen.String()); got != "40 120" {
		t.Errorf("exec -t stty size printed %q, want %q", got, "40 120")
	}
}

// ioType types s on the pty and waits for want on the screen after it.
func ioType(t *testing.T, master console.Console, screen *testutil.Buffer, s, want string) {
	t.Helper()
	mark := screen.Len()
	if _, err := master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if want == "" {
		return
	}
	testutil.Eventually(t, ioWait, fmt.Sprintf("%q after typing %q", want, s), func() bool {
		return strings.Contains(screen.String()[mark:], want)
	})
}

// ioPtySize reads the window size of the terminal on pid's stdin, through
// its /proc fd link (the pty lives in the container's devpts).
func ioPtySize(pid int) (*unix.Winsize, error) {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/0", pid), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
}

// TestIONoLeakedFds: the container's init and exec'd processes hold only
// 0, 1 and 2, with pipes, with stdin and with a terminal; and a failed
// exec -t leaves no pty master in the shim.
func TestIONoLeakedFds(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		pipes := e.Bundle("sleep", "1000")
		tty := e.BundleWith(bundle.Options{Args: []string{"sleep", "1000"}, Terminal: true})
		cases := []struct {
			id, bundle string
			flags      []string
		}{
			{"pipes", pipes, nil},
			{"stdin", pipes, []string{"-i"}},
			{"term", tty, []string{"-t", "-i"}},
		}
		for _, c := range cases {
			t.Run(c.id, func(t *testing.T) {
				e.MustTether(append(append([]string{"run", "-d"}, c.flags...), "--bundle", c.bundle, c.id)...)
				ioCheckFds(t, "init", ioState(t, e, c.id).Pid)
				e.MustTether("exec", "-d", "--exec-id", "x", c.id, "--", "sleep", "1000")
				e.MustTether("exec", "-d", "-t", "-i", "--exec-id", "xt", c.id, "--", "sleep", "1000")
				for _, x := range ioState(t, e, c.id).Execs {
					ioCheckFds(t, "exec "+x.ID, x.Pid)
				}
				e.MustTether("delete", "--force", c.id)
			})
		}
		t.Run("failed-exec-tty", func(t *testing.T) {
			// The runtime sends the pty master before it finds the command
			// missing: the shim must not keep it.
			e.MustTether("run", "-d", "--bundle", pipes, "fail")
			shimPid := ioShimPid(t, e, "fail")
			for range 3 {
				if r := e.Tether("exec", "-t", "fail", "--", "/nonexistent"); r.Code == 0 {
					t.Fatalf("exec of a missing command succeeded")
				}
			}
			testutil.Eventually(t, ioWait, "the shim to hold no pty master", func() bool {
				return ioCountFds(shimPid, "/dev/pts/ptmx") == 0
			})
			e.MustTether("delete", "--force", "fail")
		})
	})
}

// ioShimPid is the shim pid tether state reports.
func ioShimPid(t *testing.T, e *testutil.Env, id string) int {
	t.Helper()
	var st struct {
		ShimPid int `json:"shim_pid"`
	}
	if err := json.Unmarshal([]byte(e.MustTether("state", id)), &st); err != nil || st.ShimPid == 0 {
		t.Fatalf("state %s: no shim pid (%v)", id, err)
	}
	return st.ShimPid
}

// ioCountFds counts pid's descriptors pointing at target.
func ioCountFds(pid int, target string) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, ent := range ents {
		if l, _ := os.Readlink(filepath.Join(dir, ent.Name())); l == target {
			n++
		}
	}
	return n
}

// ioCheckFds waits for pid to run sleep (the runtime's own descriptors are
// gone by then) and checks it holds only 0, 1 and 2.
func ioCheckFds(t *testing.T, what string, pid int) {
	t.Helper()
	testutil.Eventually(t, ioWait, what+" to exec sleep", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return strings.HasPrefix(string(b), "sleep\x00")
	})
	fds := testutil.FDs(t, pid)
	if !slices.Equal(slices.Sorted(maps.Keys(fds)), []int{0, 1, 2}) {
		t.Errorf("%s (pid %d) holds fds %v, want only 0, 1, 2", what, pid, fds)
	}
}

// ---- helpers ----

// ioGenerate returns n deterministic bytes mixing what a log must carry
// exactly: short text lines, empty lines, lines longer than one log entry
// (16 KiB) holding \r and NUL, and pseudo-random binary (AES-CTR, fast
// even under the race detector); the last byte is not a newline.
func ioGenerate(n int) []byte {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		panic(err)
	}
	stream := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	var text []byte
	for i := range 5000 {
		text = fmt.Appendf(text, "line %d %s\n", i, strings.Repeat("abc", i%70))
	}
	long := append(bytes.Repeat([]byte("long\r\x00 "), 6000), '\n')
	b := make([]byte, 0, n+(2<<20))
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "block %d\n", i)
		switch i % 4 {
		case 0:
			chunk := make([]byte, 1<<20)
			stream.XORKeyStream(chunk, chunk)
			b = append(b, chunk...)
		case 1:
			b = append(b, text...)
		case 2:
			b = append(b, long...)
		case 3:
			b = append(b, bytes.Repeat([]byte{'\n'}, 1+i%1000)...)
		}
	}
	b = b[:n]
	if b[n-1] == '\n' {
		b[n-1] = 'x'
	}
	return b
}

// ioPayloadFiles writes data's two halves to d1 and d2 in a folder that
// lasts as long as t, for ioLinkPayload.
func ioPayloadFiles(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	half := len(data) / 2
	ioWriteFile(t, filepath.Join(dir, "d1"), data[:half])
	ioWriteFile(t, filepath.Join(dir, "d2"), data[half:])
	return dir
}

// ioLinkPayload puts d1 and d2 from dir into the bundle's rootfs (hard
// links, copies if the link fails).
func ioLinkPayload(t *testing.T, dir, bundleDir string) {
	t.Helper()
	for _, name := range []string{"d1", "d2"} {
		src, dst := filepath.Join(dir, name), filepath.Join(bundleDir, "rootfs", name)
		if os.Link(src, dst) == nil {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		ioWriteFile(t, dst, b)
	}
}

// ioLines returns lines from to to-1, each 100 bytes with its newline.
func ioLines(from, to int) []byte {
	var b []byte
	for i := from; i < to; i++ {
		b = fmt.Appendf(b, "%08d %s\n", i, strings.Repeat("=", 90))
	}
	return b
}

func ioWriteFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ioMkfifo makes a FIFO /name in the bundle's rootfs and returns its host
// path. A container blocks on `read x < /name` until ioOpenGate; use each
// one once (a reopened FIFO can pair with the previous writer).
func ioMkfifo(t *testing.T, bundleDir, name string) string {
	t.Helper()
	p := filepath.Join(bundleDir, "rootfs", name)
	if err := unix.Mkfifo(p, 0o666); err != nil {
		t.Fatal(err)
	}
	return p
}

// ioOpenGate lets a container blocked on `read x < gate` go on: it opens
// the FIFO for writing (which waits for the container to open it) and
// writes one line.
func ioOpenGate(t *testing.T, gate string) {
	t.Helper()
	ioWithin(t, "the container to open "+gate, func() error {
		f, err := os.OpenFile(gate, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.Write([]byte("go\n"))
		f.Close()
		return err
	})
}

// ioDrainFifo waits for the container to write to the FIFO (echo > /f) and
// reads until it closes it.
func ioDrainFifo(t *testing.T, path string) {
	t.Helper()
	ioWithin(t, "the container to write "+path, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
}

// ioWithin runs f, failing the test if it errs or takes longer than
// ioWait (a FIFO open that never completes would otherwise hang).
func ioWithin(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(ioWait):
		t.Fatalf("timed out after %v waiting for %s", ioWait, what)
	}
}

// ioProc is a CLI child of the test. Its stdout and stderr go straight to
// files (no copying goroutine: 100 MiB pass through quickly even under the
// race detector).
type ioProc struct {
	cmd      *exec.Cmd
	out, err ioOut
	done     chan struct{}
	code     int
}

// ioOut is a file a child writes its output to.
type ioOut struct{ f *os.File }

func ioNewOut(t *testing.T) ioOut {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ioOut{f}
}

// Len is how many bytes were written so far.
func (o ioOut) Len() int {
	fi, err := o.f.Stat()
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

// Bytes is what was written so far.
func (o ioOut) Bytes() []byte {
	b, _ := os.ReadFile(o.f.Name())
	return b
}

func (o ioOut) String() string { return string(o.Bytes()) }

// ioStart starts the CLI with args and stdin (nil: /dev/null). The child
// is killed at the end of the test if it is still running.
func ioStart(t *testing.T, e *testutil.Env, stdin io.Reader, args ...string) *ioProc {
	t.Helper()
	cmd := e.Command(args...)
	cmd.Stdin = stdin
	p := &ioProc{out: ioNewOut(t), err: ioNewOut(t)}
	cmd.Stdout, cmd.Stderr = p.out.f, p.err.f
	return ioStartCmd(t, cmd, p)
}

// ioStartCmd starts cmd as p (a new ioProc if nil).
func ioStartCmd(t *testing.T, cmd *exec.Cmd, p *ioProc) *ioProc {
	t.Helper()
	if p == nil {
		p = &ioProc{}
	}
	p.cmd, p.done = cmd, make(chan struct{})
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the child to exit and returns its exit code.
func (p *ioProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(ioWait):
		t.Fatalf("%v did not exit within %v; stdout %d bytes, stderr %q", p.cmd.Args, ioWait, p.out.Len(), p.err.String())
		return -1
	}
}

// kill ends the child with SIGKILL, as a crash would.
func (p *ioProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
}

// ioPipeEnds is a pipe whose read end is a child's stdin.
type ioPipeEnds struct{ r, w *os.File }

func ioPipe(t *testing.T) *ioPipeEnds {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return &ioPipeEnds{r, w}
}

func (p *ioPipeEnds) send(t *testing.T, s string) {
	t.Helper()
	if _, err := p.w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// ioLogs runs tether logs and returns its stdout and stderr.
func ioLogs(t *testing.T, e *testutil.Env, id string, args ...string) ([]byte, []byte) {
	t.Helper()
	p := ioStart(t, e, nil, append(append([]string{"logs"}, args...), id)...)
	if code := p.wait(t); code != 0 {
		t.Fatalf("tether logs %v %s: exit %d: %s", args, id, code, p.err.String())
	}
	return p.out.Bytes(), p.err.Bytes()
}

// ioWaitStatus waits for the container to exit and checks its status.
func ioWaitStatus(t *testing.T, e *testutil.Env, id string, want int) {
	t.Helper()
	p := ioStart(t, e, nil, "wait", id)
	if code := p.wait(t); code != want {
		t.Fatalf("tether wait %s: exit %d (stdout %q, stderr %q), want %d", id, code, p.out.String(), p.err.String(), want)
	}
}

// ioStateOf is the part of tether state this suite reads.
type ioStateOf struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
	Execs  []struct {
		ID  string `json:"id"`
		Pid int    `json:"pid"`
	} `json:"execs"`
}

func ioState(t *testing.T, e *testutil.Env, id string) ioStateOf {
	t.Helper()
	var st ioStateOf
	out := e.MustTether("state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state %s: %v: %s", id, err, out)
	}
	return st
}

func ioStatus(t *testing.T, e *testutil.Env, id string) string {
	t.Helper()
	return ioState(t, e, id).Status
}

// ioFind returns where needle, a piece of ioGenerate's output, occurs in
// hay (another piece), or -1. It places needle by the first of the unique
// "block N" lines in it (a plain search would crawl through the repetitive
// blocks), falling back to a plain search when it holds none.
func ioFind(hay, needle []byte) int {
	if k := bytes.Index(needle, []byte("\nblock ")); k >= 0 {
		if end := bytes.IndexByte(needle[k+1:], '\n'); end >= 0 {
			p := bytes.Index(hay, needle[k:k+end+2])
			if p >= k && bytes.HasPrefix(hay[p-k:], needle) {
				return p - k
			}
			return -1
		}
	}
	return bytes.Index(hay, needle)
}

// ioSameBytes compares by sha256 and, on a mismatch, says where the first
// difference is.
func ioSameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if sha256.Sum256(got) == sha256.Sum256(want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: %d bytes, sha256 %x; want %d bytes, sha256 %x; first difference at byte %d",
		what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want), i)
}
