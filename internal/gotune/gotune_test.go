package gotune

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestRuntimeEnv(t *testing.T) {
	gogc := "GOGC=" + strconv.Itoa(GOGC)
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"empty", nil, []string{"GOGC=50", "GOMAXPROCS=1"}},
		{"kept", []string{"PATH=/bin", "HOME=/root"}, []string{"GOGC=50", "GOMAXPROCS=1", "HOME=/root", "PATH=/bin"}},
		{"the manager's own settings replaced", []string{"GOMAXPROCS=8", "GOGC=off", "X=1"}, []string{"GOGC=50", "GOMAXPROCS=1", "X=1"}},
		{"a prefix is not a match", []string{"GOGCX=1"}, []string{"GOGC=50", "GOGCX=1", "GOMAXPROCS=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Env(tc.in)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Env(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !slices.Contains(got, gogc) {
				t.Fatalf("Env(%q) lacks %s", tc.in, gogc)
			}
		})
	}
}

// TestResident: the resident size is read from /proc/self/statm without
// allocating, and it is this process's (a test binary: well above 1 MiB).
func TestResident(t *testing.T) {
	var buf [64]byte
	if got := resident(buf[:]); got < 1<<20 || got > 1<<40 {
		t.Fatalf("resident() = %d bytes: want this process's resident size", got)
	}
	if n := testing.AllocsPerRun(10, func() { resident(buf[:]) }); n != 0 {
		t.Errorf("resident allocates %v times a call: an idle shim would not stay idle", n)
	}
	for in, want := range map[string]uint64{
		"1234 567 89 1 0 300 0\n": 567,
		"1234 567":                567,
		"1234\n":                  0,
		"":                        0,
	} {
		if got := parseStatmResident([]byte(in)); got != want {
			t.Errorf("parseStatmResident(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestTrimWhenIdle: after the resident size grew by more than the
// threshold and then stayed put, the trim returns the freed memory.
func TestTrimWhenIdle(t *testing.T) {
	var buf [64]byte
	go TrimWhenIdle(20*time.Millisecond, 1<<20)
	time.Sleep(50 * time.Millisecond) // its base is taken
	garbage := make([]byte, 32<<20)
	for i := range garbage {
		garbage[i] = 1
	}
	peak := resident(buf[:])
	garbage = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		if now := resident(buf[:]); now+16<<20 < peak {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("resident still %d bytes 10 s after 32 MiB of garbage (peak %d): not trimmed", resident(buf[:]), peak)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
