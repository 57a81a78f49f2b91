package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoRuntimeDir: a non-root caller has no default root because
// $XDG_RUNTIME_DIR is unset (RemedyRuntimeDir says what to do).
var ErrNoRuntimeDir = errors.New("no runtime root for a non-root user: $XDG_RUNTIME_DIR is unset")

// DefaultRootFor is the runtime root used when Opts.Root is empty, for a
// caller whose effective uid is uid: DefaultRoot for root, and
// $XDG_RUNTIME_DIR/tether for anyone else, as runc ($XDG_RUNTIME_DIR/runc)
// and podman do. The OCI runtime's own --root lives under it (runtimeRoot),
// so it is per user too. Without XDG_RUNTIME_DIR a non-root caller gets
// ErrNoRuntimeDir with RemedyRuntimeDir.
func DefaultRootFor(uid int) (string, error) {
	if uid == 0 {
		return DefaultRoot, nil
	}
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		return "", withRemedy(RemedyRuntimeDir, "", fmt.Errorf("%w (uid %d)", ErrNoRuntimeDir, uid))
	}
	if !filepath.IsAbs(dir) {
		return "", withRemedy(RemedyRuntimeDir, "", fmt.Errorf("%w: it is %q, not an absolute path (uid %d)", ErrNoRuntimeDir, dir, uid))
	}
	return filepath.Join(dir, "tether"), nil
}
