package reaper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// processMonitor is the ProcessMonitor interface of the OCI binding.
type processMonitor interface {
	Start(cmd *exec.Cmd) (wait func() (int, error), err error)
}

var (
	_ processMonitor = (*Monitor)(nil)
)

// runMonitor makes the test binary a subreaper and runs a Monitor until the
// test ends; cleanup waits for the loop to stop so that no loop outlives its
// test and reaps the children of the next one.
func runMonitor(t *testing.T) *Monitor {
	t.Helper()
	if err := SetSubreaper(); err != nil {
		t.Fatalf("SetSubreaper: %v", err)
	}
	m := New()
	ctx, cancel := context.WithCancel(context.Background())
	m.Run(ctx)
	t.Cleanup(func() {
		cancel()
		<-m.Done()
	})
	return m
}

func subCount(m *Monitor) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

// zombies lists our children in state Z.
func zombies(t *testing.T) []int {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 2 && f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, pid)
		}
	}
	return out
}

// assertNoZombies allows the loop a moment for exits still in flight.
func assertNoZombies(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		z := zombies(t)
		if len(z) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie children left: %v", z)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor reads sub until an exit of pid arrives.
func waitFor(t *testing.T, sub *Subscription, pid int) Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for pid %d: %v", pid, err)
		}
		if e.Pid == pid {
			return e
		}
	}
}

type childCase struct {
	script string
	want   int
}

// childCases returns n scripts with varied exits, every fifth killed by a
// signal.
func childCases(n int) []childCase {
	sigs := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGINT, syscall.SIGUSR1}
	cases := make([]childCase, n)
	for i := range cases {
		if i%5 == 4 {
			sig := sigs[(i/5)%len(sigs)]
			cases[i] = childCase{fmt.Sprintf("kill -%d $$; sleep 5", sig), 128 + int(sig)}
			continue
		}
		code := (i * 7) % 256
		cases[i] = childCase{fmt.Sprintf("exit %d", code), code}
	}
	return cases
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		ws   unix.WaitStatus
		want int
	}{
		{0, 0},
		{1 << 8, 1},
		{255 << 8, 255},
		{unix.WaitStatus(unix.SIGKILL), 137},
		{unix.WaitStatus(unix.SIGTERM), 143},
		{unix.WaitStatus(unix.SIGSEGV) | 0x80, 139},   // core dumped
		{0x7f | unix.WaitStatus(unix.SIGSTOP)<<8, -1}, // stopped
	} {
		if got := ExitStatus(tc.ws); got != tc.want {
			t.Errorf("ExitStatus(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
		}
	}
}

func TestStartManyConcurrent(t *testing.T) {
	m := runMonitor(t)
	cases := childCases(300)
	var wg sync.WaitGroup
	errs := make(chan error, len(cases))
	for i, tc := range cases {
		wg.Go(func() {
			wait, err := m.Start(exec.Command("/bin/sh", "-c", tc.script))
			if err != nil {
				errs <- fmt.Errorf("case %d: start: %v", i, err)
				return
			}
			got, err := wait()
			if err != nil || got != tc.want {
				errs <- fmt.Errorf("case %d %q: got %d, %v; want %d", i, tc.script, got, err, tc.want)
			}
			if again, _ := wait(); again != got {
				errs <- fmt.Errorf("case %d: second wait gave %d, first %d", i, again, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertNoZombies(t)
	if n := subCount(m); n != 0 {
		t.Errorf("%d subscriptions left open", n)
	}
}

// TestEachExitOnce checks that a subscriber sees every exit exactly once.
func TestEachExitOnce(t *testing.T) {
	m := runMonitor(t)
	sub := m.Subscribe()
	defer sub.Close()
	cases := childCases(100)
	pids := make(chan int, len(cases))
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Go(func() {
			cmd := exec.Command("/bin/sh", "-c", tc.script)
			wait, err := m.Start(cmd)
			if err != nil {
				t.Error(err)
				return
			}
			pids <- cmd.Process.Pid
			wait()
		})
	}
	wg.Wait()
	close(pids)
	// A waiter may return before the broadcast reached sub; Reap waits
	// for the pass in flight.
	if err := m.Reap(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, e := range sub.Drain() {
		seen[e.Pid]++
	}
	for pid := range pids {
		if seen[pid] != 1 {
			t.Errorf("pid %d seen %d times", pid, seen[pid])
		}
	}
}

func TestStartCapturesOutput(t *testing.T) {
	m := runMonitor(t)
	var out bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", "echo hello; echo oops >&2; exit 3")
	cmd.Stdout = &out
	cmd.Stderr = &out
	wait, err := m.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	status, err := wait()
	if status != 3 || err != nil {
		t.Fatalf("wait = %d, %v; want 3, nil", status, err)
	}
	if got := out.String(); got != "hello\noops\n" {
		t.Fatalf("output %q", got)
	}
}

func TestStartFailureClosesSubscription(t *testing.T) {
	m := runMonitor(t)
	wait, err := m.Start(exec.Command("/nonexistent/tether-reaper-test"))
	if err == nil || wait != nil {
		t.Fatalf("Start: wait is nil: %v, err = %v; want nil wait and an error", wait == nil, err)
	}
	if n := subCount(m); n != 0 {
		t.Fatalf("%d subscriptions left open", n)
	}
}

// TestOrphanReaped: the backgrounded sleep outlives its shell, is
// reparented to the test binary (a subreaper) and reaped by the loop.
func TestOrphanReaped(t *testing.T) {
	m := runMonitor(t)
	sub := m.Subscribe()
	defer sub.Close()
	var out bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.5 >/dev/null 2>&1 & echo $!; exit 0")
	cmd.Stdout = &out
	wait, err := m.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := wait(); status != 0 || err != nil {
		t.Fatalf("shell: %d, %v", status, err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("orphan pid from %q: %v", out.String(), err)
	}
	if ppid := parentOf(orphan); ppid != os.Getpid() {
		t.Errorf("orphan %d has parent %d, want us (%d)", orphan, ppid, os.Getpid())
	}
	if e := waitFor(t, sub, orphan); e.Status != 0 {
		t.Fatalf("orphan exit %+v", e)
	}
	assertNoZombies(t)
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// TestSlowSubscriber: a subscriber that never reads stalls nobody and still
// gets every exit; subscribers closing during broadcasts are harmless.
func TestSlowSubscriber(t *testing.T) {
	m := runMonitor(t)
	slow := m.Subscribe()
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for range 8 {
		churn.Go(func() { subscribeChurn(m, stop) })
	}
	cases := childCases(200)
	pids := make(chan int, len(cases))
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Go(func() {
			cmd := exec.Command("/bin/sh", "-c", tc.script)
			wait, err := m.Start(cmd)
			if err != nil {
				t.Error(err)
				return
			}
			pids <- cmd.Process.Pid
			if got, _ := wait(); got != tc.want {
				t.Errorf("%q: got %d want %d", tc.script, got, tc.want)
			}
		})
	}
	waitTimeout(t, &wg, 30*time.Second)
	close(stop)
	churn.Wait()
	close(pids)
	if err := m.Reap(); err != nil { // finish the broadcast in flight
		t.Fatal(err)
	}
	queued := map[int]bool{}
	for _, e := range slow.Drain() {
		queued[e.Pid] = true
	}
	for pid := range pids {
		if !queued[pid] {
			t.Errorf("slow subscriber lost the exit of %d", pid)
		}
	}
	slow.Close()
	slow.Close()
}

// subscribeChurn subscribes and closes (sometimes twice, concurrently) until
// stop is closed.
func subscribeChurn(m *Monitor, stop chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		s := m.Subscribe()
		if i%2 == 0 {
			go s.Close()
		}
		s.Drain()
		s.Close()
	}
}

func waitTimeout(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("children not reaped within %v", d)
	}
}

// TestExitBeforePidKnown: the exit is queued before the subscriber knows
// which pid to look for, and is found afterwards. It also pins down what
// cmd.Wait returns for a child the loop already reaped.
func TestExitBeforePidKnown(t *testing.T) {
	m := runMonitor(t)
	sub := m.Subscribe()
	defer sub.Close()
	cmd := exec.Command("/bin/sh", "-c", "exit 42")
	if err := cmd.Start(); err != nil { // deliberately not m.Start
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // exit and reap happen meanwhile
	e := waitFor(t, sub, cmd.Process.Pid)
	if e.Status != 42 || e.Timestamp.IsZero() {
		t.Fatalf("exit %+v", e)
	}
	err := cmd.Wait()
	t.Logf("cmd.Wait after reaping: %T %q", err, err)
	if !errors.Is(err, syscall.ECHILD) || !isNoChild(err) {
		t.Fatalf("cmd.Wait = %#v, want an ECHILD error", err)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) {
		t.Errorf("cmd.Wait error %T is not an *os.SyscallError", err)
	}
}

func TestIsNoChild(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{syscall.ECHILD, true},
		{os.NewSyscallError("waitid", syscall.ECHILD), true},
		{os.NewSyscallError("wait", syscall.ECHILD), true},
		{fmt.Errorf("exec: %w", os.NewSyscallError("wait", syscall.ECHILD)), true},
		{errors.New("waitid: no child processes"), true}, // errno lost
		{syscall.EINVAL, false},
		{errors.New("exec: Wait was already called"), false},
	} {
		if got := isNoChild(tc.err); got != tc.want {
			t.Errorf("isNoChild(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestNextContextAndClose(t *testing.T) {
	m := New() // not running: nothing is reaped
	sub := m.Subscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v, want deadline exceeded", err)
	}
	go func() { time.Sleep(20 * time.Millisecond); sub.Close() }()
	if _, err := sub.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
	select {
	case <-sub.C():
	default:
		t.Fatal("C not signalled on Close")
	}
}

// TestStoppedMonitor: exits queued before the stop stay readable, Reap
// refuses, and Start falls back to waiting directly.
func TestStoppedMonitor(t *testing.T) {
	if err := SetSubreaper(); err != nil {
		t.Fatal(err)
	}
	m := New()
	sub := m.Subscribe()
	cmd := exec.Command("/bin/sh", "-c", "exit 5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cmd.Process.Pid)
	ctx, cancel := context.WithCancel(context.Background())
	m.Run(ctx)
	cancel()
	<-m.Done()
	if e := waitFor(t, sub, cmd.Process.Pid); e.Status != 5 {
		t.Fatalf("queued exit %+v", e)
	}
	if _, err := sub.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next on stopped monitor = %v", err)
	}
	if err := m.Reap(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Reap = %v, want ErrStopped", err)
	}
	wait, err := m.Start(exec.Command("/bin/sh", "-c", "kill -TERM $$"))
	if err != nil {
		t.Fatal(err)
	}
	if status, err := wait(); status != 143 || err != nil {
		t.Fatalf("fallback wait = %d, %v; want 143", status, err)
	}
}

// waitGone waits until pid is a zombie (exited, not reaped).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for {
		var si unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.EINTR) {
			t.Fatalf("waitid: %v", err)
		}
	}
}

// TestWaitDirect: the fallback wait (cmd.Wait, for a command the Monitor
// could not take) maps each end to its status. It runs without a Monitor:
// earlier tests' loops have stopped.
func TestWaitDirect(t *testing.T) {
	for _, tc := range []childCase{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 255", 255},
		{"kill -TERM $$", 143},
		{"kill -KILL $$", 137},
	} {
		cmd := exec.Command("/bin/sh", "-c", tc.script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if got, err := waitDirect(cmd); got != tc.want || err != nil {
			t.Errorf("%q: %d, %v; want %d", tc.script, got, err, tc.want)
		}
	}
}

// TestStartReleasesPidfd: each command started through the Monitor holds a
// pidfd (os/exec); once its wait returned, that fd is closed at once, not
// whenever the garbage collector gets to the Process (it is kept from
// running here).
func TestStartReleasesPidfd(t *testing.T) {
	m := runMonitor(t)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for range 20 {
		wait, err := m.Start(exec.Command("/bin/true"))
		if err != nil {
			t.Fatal(err)
		}
		if status, err := wait(); status != 0 || err != nil {
			t.Fatalf("true: %d, %v", status, err)
		}
	}
	if after := fds(); after > before {
		t.Fatalf("%d fds before 20 commands, %d after: pidfds left open", before, after)
	}
}
