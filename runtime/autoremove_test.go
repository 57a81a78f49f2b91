package runtime

import "testing"

// TestWithin: what lies in a container's folder (and is removed with it).
func TestWithin(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/run/tether/c1", true},
		{"/run/tether/c1/bundle", true},
		{"/run/tether/c1/../c1/ckpt", true},
		{"/run/tether/c10", false},
		{"/run/tether/.checkpoints/c1", false},
		{"/run/tether", false},
		{"/srv/..c1", false},
	} {
		if got := within("/run/tether/c1", c.path); got != c.want {
			t.Errorf("within(/run/tether/c1, %s) = %v; want %v", c.path, got, c.want)
		}
	}
}
