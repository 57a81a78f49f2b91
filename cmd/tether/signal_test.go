package main

import (
	"strings"
	"syscall"
	"testing"
)

// TestParseSignal: names in any case, with or without SIG, and numbers
// 1-64 are taken; anything else is refused with a message naming it.
func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		in   string
		want syscall.Signal
	}{
		{"bare name", "TERM", syscall.SIGTERM},
		{"SIG prefix", "SIGTERM", syscall.SIGTERM},
		{"lower case", "term", syscall.SIGTERM},
		{"mixed case with prefix", "SigKill", syscall.SIGKILL},
		{"number", "9", syscall.SIGKILL},
		{"highest number", "64", syscall.Signal(64)},
		{"user signal", "usr1", syscall.SIGUSR1},
		{"unknown name", "FOO", 0},
		{"unknown name with prefix", "SIGFOO", 0},
		{"zero", "0", 0},
		{"too high", "65", 0},
		{"negative", "-1", 0},
		{"not an integer", "1.5", 0},
		{"empty", "", 0},
		{"prefix only", "SIG", 0},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			got, err := parseSignal(tc.in)
			if tc.want == 0 {
				if err == nil || !strings.Contains(err.Error(), "signal") {
					t.Fatalf("parseSignal(%q) = %v, %v; want an error naming the signal", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseSignal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
