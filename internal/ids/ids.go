// Package ids holds the one rule for container and exec IDs, shared by the
// CLI, the manager, the store and the shim.
package ids

import (
	"fmt"

	"github.com/tether-run/tether/internal/errdefs"
)

// ValidID returns nil for a usable container or exec ID, otherwise an
// error wrapping errdefs.ErrInvalid that says what an ID may hold.
func ValidID(id string) error {
	if Match(id) {
		return nil
	}
	return fmt.Errorf("%w: ID %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", errdefs.ErrInvalid, id)
}

// Match reports whether id matches ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$.
// It is written out by hand: compiling that regexp at start-up cost each
// shim about 230 KiB of resident memory (README, "Shim memory").
func Match(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}
