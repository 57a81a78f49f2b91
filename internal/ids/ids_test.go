package ids

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/errdefs"
)

// idRegexp is the rule of DESIGN.md; Match must agree with it on every
// input.
var idRegexp = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		ok       bool
	}{
		{"one letter", "a", true},
		{"one digit", "7", true},
		{"all allowed characters", "Ab9_.-x", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"65 characters", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"starts with a dot", ".a", false},
		{"starts with a dash", "-a", false},
		{"starts with an underscore", "_a", false},
		{"slash", "a/b", false},
		{"dot-dot", "..", false},
		{"space", "a b", false},
		{"newline at the end", "a\n", false},
		{"NUL", "a\x00", false},
		{"non-ASCII letter", "é", false},
		{"non-ASCII after a letter", "aé", false},
		{"colon", "a:b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidID(tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ValidID(%q) = %v, want ErrInvalid", tc.id, err)
			}
			if got := idRegexp.MatchString(tc.id); got != tc.ok {
				t.Fatalf("the table disagrees with the regexp on %q", tc.id)
			}
		})
	}
}

// TestIDPatternAllBytes checks every byte at the first and a later
// position, at and past the length limit.
func TestIDPatternAllBytes(t *testing.T) {
	for b := 0; b < 256; b++ {
		for _, id := range []string{
			string([]byte{byte(b)}),
			"a" + string([]byte{byte(b)}),
			strings.Repeat("a", 63) + string([]byte{byte(b)}),
			strings.Repeat("a", 64) + string([]byte{byte(b)}),
		} {
			if got, want := Match(id), idRegexp.MatchString(id); got != want {
				t.Fatalf("Match(%q) = %v, the regexp says %v", id, got, want)
			}
		}
	}
}

func FuzzIDPattern(f *testing.F) {
	for _, s := range []string{"a", "a.b-c_d", "", ".", strings.Repeat("x", 65), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := Match(id), idRegexp.MatchString(id); got != want {
			t.Fatalf("Match(%q) = %v, the regexp says %v", id, got, want)
		}
	})
}
