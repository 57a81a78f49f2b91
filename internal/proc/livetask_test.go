package proc

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const zombieLeaderEnv = "TETHER_PROC_TEST_ZOMBIE_LEADER"

func init() {
	if os.Getenv(zombieLeaderEnv) != "" {
		runtime.LockOSThread() // keep the main goroutine on the main thread
	}
}

// TestMain, in the helper mode, ends the main thread alone (exit, not
// exit_group) while another thread lives on: the state a process is in
// during an execve called from another thread, and after pthread_exit in
// main.
func TestMain(m *testing.M) {
	if os.Getenv(zombieLeaderEnv) == "" {
		os.Exit(m.Run())
	}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread() // a thread of its own, not the main one
		close(ready)
		for {
			time.Sleep(time.Hour)
		}
	}()
	<-ready
	os.Stdout.WriteString("ready\n")
	unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0)
}

// TestLiveTaskZombieLeader: a process whose main thread is a zombie but
// which still has a live thread is alive, and its command line is read
// through that thread; once it is killed it is gone.
func TestLiveTaskZombieLeader(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "zombie-leader-marker")
	cmd.Env = append(os.Environ(), zombieLeaderEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	id, err := Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := ReadStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the helper's main thread did not end (state %c)", st.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := id.Check(); err != nil {
		t.Fatalf("a process with a zombie main thread and a live thread: %v, want alive", err)
	}
	tid := LiveTask(pid)
	if tid == 0 || tid == pid {
		t.Fatalf("LiveTask(%d) = %d, want another thread", pid, tid)
	}
	b, err := Cmdline(pid)
	if err != nil || !bytes.Contains(b, []byte("zombie-leader-marker")) {
		t.Fatalf("Cmdline(%d) = %q, %v; want the helper's arguments", pid, b, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	killed = true
	if err := id.Check(); !errors.Is(err, ErrGone) {
		t.Fatalf("after the kill: %v, want ErrGone", err)
	}
	if LiveTask(pid) != 0 {
		t.Fatalf("LiveTask after the kill is not 0")
	}
}

// TestLiveTaskZombie: a dead process that nobody reaped yet has no live
// thread and is gone.
func TestLiveTaskZombie(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	id, err := Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	var info unix.Siginfo
	// Wait for the exit without reaping it (WNOWAIT): the zombie stays.
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if LiveTask(pid) != 0 {
		t.Fatalf("LiveTask of a zombie is not 0")
	}
	if err := id.Check(); !errors.Is(err, ErrGone) {
		t.Fatalf("a zombie: %v, want ErrGone", err)
	}
	if _, err := Cmdline(pid); !errors.Is(err, ErrGone) {
		t.Fatalf("Cmdline of a zombie: %v, want ErrGone", err)
	}
}
