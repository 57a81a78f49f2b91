package restore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/store"
)

func TestIsShimCmdline(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		args []string
		want bool
	}{
		{"serving shim", []string{"/bin/tether-shim", "serve", "--root", "/run/t", "--id", "web", "--lock-fd", "4"}, true},
		{"adopting shim", []string{"tether-shim", "serve-adopt", "--root", "/run/t/", "--id", "web"}, true},
		{"start helper", []string{"tether-shim", "start", "--root", "/run/t", "--id", "web"}, false},
		{"other container", []string{"tether-shim", "serve", "--root", "/run/t", "--id", "db"}, false},
		{"other root", []string{"tether-shim", "serve", "--root", "/run/u", "--id", "web"}, false},
		{"no root", []string{"tether-shim", "serve", "--id", "web"}, false},
		{"unrelated", []string{"sleep", "1000"}, false},
		{"empty", nil, false},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			var b []byte
			for _, a := range tc.args {
				b = append(append(b, a...), 0)
			}
			if got := isShimCmdline(b, "/run/t", "web"); got != tc.want {
				t.Fatalf("isShimCmdline(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

// TestVerifyMember: this test process runs in the host's root, so it is a
// member of a bundle whose rootfs is "/" and of no other.
func TestVerifyMember(t *testing.T) {
	self, err := proc.Identify(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc, rootfs string
		ident       proc.Identity
		foreign     bool
	}{
		{"same root", "/", self, false},
		{"other root", t.TempDir(), self, true},
		{"wrong start time", "/", proc.Identity{Pid: self.Pid, StartTime: self.StartTime + 1, BootID: self.BootID}, false},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			bundle := t.TempDir()
			cfg := `{"root":{"path":"` + tc.rootfs + `"}}`
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			err := VerifyMember(&store.Record{ID: "x", Bundle: bundle}, tc.ident)
			switch {
			case tc.ident == self && !tc.foreign && err != nil:
				t.Fatalf("member: %v", err)
			case tc.foreign && (!errors.Is(err, ErrForeign) || !errors.Is(err, proc.ErrGone)):
				t.Fatalf("other root: %v, want ErrForeign and proc.ErrGone", err)
			case tc.ident != self && !errors.Is(err, proc.ErrGone):
				t.Fatalf("wrong identity: %v, want proc.ErrGone", err)
			}
		})
	}
}
