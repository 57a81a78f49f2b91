// Package signals owns the one rule for naming a signal: a name in any
// case, with or without SIG (TERM, SIGTERM, term), or a number from 1 to
// 64. The CLI, the shim (a bundle's stop signal annotation) and the
// manager share it.
package signals

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/tether-run/tether/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Max is the highest signal number Linux has (SIGRTMAX).
const Max = 64

// Parse accepts KILL, SIGKILL, kill and 9. Anything else gives a one-line
// error wrapping errdefs.ErrInvalid that names it.
func Parse(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > Max {
			return 0, fmt.Errorf("%w: signal %d is out of range 1-%d", errdefs.ErrInvalid, n, Max)
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
	return 0, fmt.Errorf("%w: unknown signal %q: use a name such as TERM or KILL, or a number", errdefs.ErrInvalid, s)
}
