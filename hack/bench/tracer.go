package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"golang.org/x/sys/unix"
)

// The tracer rows: what the exit tracer of a rootless adoption
// (tether-shim trace-exit, README "Rootless") costs the traced process.
// Two copies of a small child run side by side, one traced by the real
// tether-shim trace-exit and one not: signal round trips (the tracer sees
// every signal, as a signal-delivery stop) and a loop of getppid system
// calls (not traced: PTRACE_SEIZE without PTRACE_O_TRACESYSGOOD/SYSCALL
// stops only at signals and at the exit).

// tracerChildArg makes the bench binary the child of the tracer rows.
const tracerChildArg = "tracer-child"

const (
	tracerRoundTrips = 2000    // signal round trips per sample
	tracerSyscalls   = 1000000 // getppid calls per sample
)

// tracerChild answers each SIGUSR1 with a SIGUSR2 to its parent, and each
// line "sys" on stdin with the ns one getppid took, over tracerSyscalls.
func tracerChild() {
	usr1 := make(chan os.Signal, 16)
	signal.Notify(usr1, syscall.SIGUSR1)
	ppid := os.Getppid()
	go func() {
		for range usr1 {
			unix.Kill(ppid, syscall.SIGUSR2)
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		t0 := time.Now()
		for i := 0; i < tracerSyscalls; i++ {
			unix.Getppid()
		}
		fmt.Printf("%f\n", float64(time.Since(t0).Nanoseconds())/tracerSyscalls)
	}
	os.Exit(0)
}

type tracerKid struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startTracerKid() (*tracerKid, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, tracerChildArg)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &tracerKid{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

func (k *tracerKid) stop() {
	k.in.Close()
	k.cmd.Process.Kill()
	k.cmd.Wait()
}

// roundTrips times tracerRoundTrips SIGUSR1 -> SIGUSR2 exchanges; usr2 is
// this process's channel for SIGUSR2.
func (k *tracerKid) roundTrips(usr2 chan os.Signal) (time.Duration, error) {
	t0 := time.Now()
	for i := 0; i < tracerRoundTrips; i++ {
		if err := k.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return 0, err
		}
		select {
		case <-usr2:
		case <-time.After(10 * time.Second):
			return 0, fmt.Errorf("tracer child did not answer SIGUSR1")
		}
	}
	return time.Since(t0) / tracerRoundTrips, nil
}

func (k *tracerKid) syscallNs() (float64, error) {
	if _, err := io.WriteString(k.in, "sys\n"); err != nil {
		return 0, err
	}
	line, err := k.out.ReadString('\n')
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(line), 64)
}

func (b *bench) tracerRows(ctx context.Context) []Row {
	const target = ""
	fail := func(err error) []Row {
		return []Row{failed("tracer_signal", "tracer: signal round trip", "µs", target, err)}
	}
	plain, err := startTracerKid()
	if err != nil {
		return fail(err)
	}
	defer plain.stop()
	traced, err := startTracerKid()
	if err != nil {
		return fail(err)
	}
	defer traced.stop()
	id, err := proc.Identify(traced.cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	tr := exec.Command(filepath.Join(b.bin, "tether-shim"), "trace-exit", "--root", b.dir, "--id", "tracer-bench",
		"--pid", strconv.Itoa(id.Pid), "--start", strconv.FormatUint(id.StartTime, 10))
	trOut, err := tr.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := tr.Start(); err != nil {
		return fail(err)
	}
	defer func() { tr.Process.Kill(); tr.Wait() }()
	if line, _ := bufio.NewReader(trOut).ReadString('\n'); strings.TrimSpace(line) != "attached" {
		return fail(fmt.Errorf("tether-shim trace-exit: %q", line))
	}
	usr2 := make(chan os.Signal, 16)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	sigT, sigP, err := pair(ctx, b.n, func(int) (time.Duration, error) { return traced.roundTrips(usr2) },
		func(int) (time.Duration, error) { return plain.roundTrips(usr2) })
	if err != nil {
		return fail(err)
	}
	var sysT, sysP samples
	for i := 0; i < b.n && ctx.Err() == nil; i++ {
		t, err1 := traced.syscallNs()
		p, err2 := plain.syscallNs()
		if err1 != nil || err2 != nil {
			return fail(fmt.Errorf("syscall loop: %v %v", err1, err2))
		}
		sysT, sysP = append(sysT, t), append(sysP, p)
	}
	us := func(s samples) samples { // pair gives ms
		out := make(samples, len(s))
		for i, v := range s {
			out[i] = v * 1000
		}
		return out
	}
	sig := Row{Name: "tracer_signal", Label: "tracer: signal round trip", figure: figureOf(us(sigT)), Unit: "µs",
		Note: fmt.Sprintf("SIGUSR1 to a traced process and SIGUSR2 back, %d per sample; the tracer resumes each signal-delivery stop", tracerRoundTrips)}
	sig.withBaseline("untraced", figureOf(us(sigP)))
	sys := Row{Name: "tracer_syscalls", Label: "tracer: getppid in a loop", figure: figureOf(sysT), Unit: "ns",
		Note: fmt.Sprintf("ns per call over %d calls; SEIZE traces no system call", tracerSyscalls)}
	sys.withBaseline("untraced", figureOf(sysP))
	return []Row{sig, sys}
}
