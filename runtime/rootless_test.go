package runtime

import (
	"errors"
	"testing"
)

// TestDefaultRootFor: root gets /run/tether whatever XDG_RUNTIME_DIR says;
// anyone else gets $XDG_RUNTIME_DIR/tether, and without it (or with a
// relative one) ErrNoRuntimeDir with RemedyRuntimeDir, naming no command.
func TestDefaultRootFor(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1234")
	if r, err := DefaultRootFor(0); err != nil || r != DefaultRoot {
		t.Errorf("root: %q %v, want %s", r, err, DefaultRoot)
	}
	if r, err := DefaultRootFor(1234); err != nil || r != "/run/user/1234/tether" {
		t.Errorf("uid 1234: %q %v, want /run/user/1234/tether", r, err)
	}
	for _, v := range []string{"", "run/user/1234"} {
		t.Setenv("XDG_RUNTIME_DIR", v)
		_, err := DefaultRootFor(1234)
		if !errors.Is(err, ErrNoRuntimeDir) {
			t.Fatalf("XDG_RUNTIME_DIR=%q: %v, want ErrNoRuntimeDir", v, err)
		}
		if re := RemedyOf(err); re == nil || re.Remedy != RemedyRuntimeDir {
			t.Errorf("XDG_RUNTIME_DIR=%q: remedy %+v, want RemedyRuntimeDir", v, re)
		}
		if cliCommand.MatchString(err.Error()) {
			t.Errorf("message names a CLI command: %q", err)
		}
	}
}
