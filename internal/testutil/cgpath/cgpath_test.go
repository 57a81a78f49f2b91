package cgpath

import (
	"strings"
	"testing"
)

func TestNewIsFreshAndOneLevel(t *testing.T) {
	a, b := New(), New()
	if a == b {
		t.Fatalf("New returned %s twice", a)
	}
	for _, p := range []string{a, b} {
		if !strings.HasPrefix(p, "/") || strings.Count(p, "/") != 1 {
			t.Errorf("%q is not one level under the root: the runtime's delete would leave its parents", p)
		}
		if !Owns(p) {
			t.Errorf("Owns(%q) = false for a path New made", p)
		}
	}
}

func TestRemoveRefusesOthers(t *testing.T) {
	for _, p := range []string{"/c", "/", "/tether-test-1-2-3", "/" + prefix + "x"} {
		if Owns(p) {
			t.Errorf("Owns(%q) = true", p)
		}
		if err := Remove(p); err == nil {
			t.Errorf("Remove(%q) succeeded on a cgroup this process did not make", p)
		}
	}
}
