package proc

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
		want Stat
	}{
		{"plain", "12 (sh) S 1 12 12 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 0 0", true, Stat{'S', 1, 777}},
		{"name with spaces and parens", "12 (a) b (c) R 5 12 12 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 42 0", true, Stat{'R', 5, 42}},
		{"truncated", "12 (sh) S 1 12", false, Stat{}},
		{"no paren", "garbage", false, Stat{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseStat = %+v, %v; want %+v ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

// sleeper starts a child that sleeps, killed and reaped when the test
// ends, and returns it with its identity.
func sleeper(t *testing.T) (*exec.Cmd, Identity) {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	id, err := Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, id
}

func TestIdentityReuseIsDetected(t *testing.T) {
	cmd, id := sleeper(t)
	if err := id.Check(); err != nil {
		t.Fatalf("live process reported gone: %v", err)
	}
	// The same pid with another start time stands for a reused pid.
	other := id
	other.StartTime++
	if err := other.Signal(syscall.SIGKILL); !errors.Is(err, ErrGone) {
		t.Fatalf("signal to a reused pid: %v, want ErrGone", err)
	}
	if err := id.Check(); err != nil {
		t.Fatalf("the live process was hit: %v", err)
	}
	stale := id
	stale.BootID = "another-boot"
	if stale.Alive() {
		t.Fatal("a record from an earlier boot counted as alive")
	}
	if err := id.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := id.Signal(syscall.SIGKILL); !errors.Is(err, ErrGone) {
		t.Fatalf("signal after exit: %v, want ErrGone", err)
	}
	if _, err := ReadStat(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestWaitExit(t *testing.T) {
	cmd, id := sleeper(t)
	if id.WaitExit(50 * time.Millisecond) {
		t.Fatal("a running process was reported gone")
	}
	other := id
	other.StartTime++
	if !other.WaitExit(time.Minute) {
		t.Fatal("a pid naming another process was waited for")
	}
	cmd.Process.Kill()
	if !id.WaitExit(10 * time.Second) {
		t.Fatal("a killed process (a zombie until reaped) was not reported gone")
	}
}

func TestKillPending(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"nothing pending", "Name:\tsh\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n", false},
		{"SIGKILL to the process", "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n", true},
		{"SIGKILL to the thread", "SigPnd:\t0000000000000100\nShdPnd:\t0000000000000000\n", true},
		{"SIGTERM only", "SigPnd:\t0000000000004000\nShdPnd:\t0000000000000000\n", false},
		{"SIGKILL blocked is not pending", "SigPnd:\t0000000000000000\nSigBlk:\t0000000000000100\n", false},
		{"garbage", "ShdPnd:\tzz\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := killPending([]byte(tc.in)); got != tc.want {
				t.Errorf("killPending = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDying(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Identify(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	if id.Dying() {
		t.Error("a sleeping process is dying")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !id.Dying() {
		t.Error("a reaped process is not dying")
	}
}
