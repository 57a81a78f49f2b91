package testutil

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// CRIUKnownBroken reports why err, a checkpoint's error, is this host's
// one known CRIU incompatibility: CRIU older than 4.1 cannot dump on
// Linux 6.13 or later ("Unexpected rt vDSO area bounds", criu#2532). It
// returns "" for any other error, or for this one on a kernel or CRIU
// where it should not happen.
func CRIUKnownBroken(err error) string {
	if err == nil || !strings.Contains(err.Error(), "Unexpected rt vDSO area bounds") {
		return ""
	}
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return ""
	}
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var kmaj, kmin int
	fmt.Sscanf(string(rel), "%d.%d", &kmaj, &kmin)
	out, _ := exec.Command("criu", "--version").Output()
	var cmaj, cmin int
	fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "Version: "), "%d.%d", &cmaj, &cmin)
	newKernel := kmaj > 6 || (kmaj == 6 && kmin >= 13)
	oldCRIU := cmaj < 4 || (cmaj == 4 && cmin < 1)
	if !newKernel || !oldCRIU {
		return ""
	}
	return fmt.Sprintf("CRIU %d.%d cannot dump on Linux %s (criu#2532, fixed in CRIU 4.1)", cmaj, cmin, rel)
}
