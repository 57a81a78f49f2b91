package signals

import (
	"errors"
	"syscall"
	"testing"

	"github.com/tether-run/tether/internal/errdefs"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		in   string
		want syscall.Signal
	}{
		{"bare name", "TERM", syscall.SIGTERM},
		{"SIG prefix", "SIGQUIT", syscall.SIGQUIT},
		{"lower case", "usr1", syscall.SIGUSR1},
		{"number", "9", syscall.SIGKILL},
		{"highest", "64", syscall.Signal(64)},
		{"unknown", "FOO", 0},
		{"zero", "0", 0},
		{"too high", "65", 0},
		{"empty", "", 0},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.want == 0 {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
