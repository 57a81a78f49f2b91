package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// testUser is an unprivileged user made for one test, with subordinate
// uid and gid ranges: the rootless CLI tests and the rootless podman tests
// run as one. Its maker removes it (remove) once everything of the user's
// is gone, as the last step of its own cleanup.
type testUser struct {
	name     string
	uid, gid int
}

// newTestUser adds a user whose name is prefix and a suffix unique to the
// run, with home home (not created; the passwd entry only), and 65536
// subordinate uids and gids (useradd allocates them under its lock where
// login.defs says so; usermod adds a free range otherwise). On a failure
// it removes what it made and fails the test.
func newTestUser(t *testing.T, prefix, home string) *testUser {
	t.Helper()
	for _, tool := range []string{"useradd", "userdel", "usermod", "newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: make deps installs it (uidmap, passwd)", tool)
		}
	}
	var b [4]byte
	rand.Read(b[:])
	u := &testUser{name: prefix + hex.EncodeToString(b[:])}
	if out, err := exec.Command("useradd", "-M", "-s", "/bin/sh", "-d", home, u.name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	fail := func(format string, a ...any) {
		t.Helper()
		u.remove(t)
		t.Fatalf(format, a...)
	}
	if len(subRanges(t, "/etc/subuid", u.name)) == 0 || len(subRanges(t, "/etc/subgid", u.name)) == 0 {
		start := freeSubStart()
		r := fmt.Sprintf("%d-%d", start, start+65535)
		if out, err := exec.Command("usermod", "--add-subuids", r, "--add-subgids", r, u.name).CombinedOutput(); err != nil {
			fail("usermod --add-subuids: %v: %s", err, out)
		}
	}
	pw, err := user.Lookup(u.name)
	if err != nil {
		fail("%v", err)
	}
	u.uid, _ = strconv.Atoi(pw.Uid)
	u.gid, _ = strconv.Atoi(pw.Gid)
	return u
}

// remove deletes the user's subordinate ranges and the user.
func (u *testUser) remove(t *testing.T) {
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		flag := map[string]string{"/etc/subuid": "--del-subuids", "/etc/subgid": "--del-subgids"}[file]
		for _, r := range subRanges(t, file, u.name) {
			if out, err := exec.Command("usermod", flag, r, u.name).CombinedOutput(); err != nil {
				t.Errorf("usermod %s %s: %v: %s", flag, r, err, out)
			}
		}
	}
	if out, err := exec.Command("userdel", u.name).CombinedOutput(); err != nil {
		t.Errorf("userdel %s: %v: %s", u.name, err, out)
	}
}

// subRanges lists the START-END ranges file gives name.
func subRanges(t *testing.T, file, name string) []string {
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 3 || f[0] != name {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && n > 0 {
			out = append(out, fmt.Sprintf("%d-%d", start, start+n-1))
		}
	}
	return out
}

// freeSubStart is a subordinate id above every range of /etc/subuid and
// /etc/subgid.
func freeSubStart() int {
	top := 100000
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) != 3 {
				continue
			}
			s, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			top = max(top, s+n)
		}
	}
	return top + 65536
}
