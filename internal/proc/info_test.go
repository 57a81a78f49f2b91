package proc

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseInfo(t *testing.T) {
	stat := "42 (my (odd) sh) S 7 42 42 0 -1 4194560 1 0 0 0 250 130 0 0 20 0 1 0 777 0"
	status := "Name:\tsh\nUid:\t1000\t1001\t1001\t1001\nGid:\t0\t0\t0\t0\n"
	for _, tc := range []struct {
		name    string
		stat    string
		status  string
		cmdline string
		ok      bool
		want    Info
	}{
		{"command line", stat, status, "sh\x00-c\x00sleep 5\x00", true,
			Info{Pid: 42, PPid: 7, UID: 1001, CPUTime: 3800 * time.Millisecond, Command: "sh -c sleep 5"}},
		{"no command line", stat, status, "", true,
			Info{Pid: 42, PPid: 7, UID: 1001, CPUTime: 3800 * time.Millisecond, Command: "[my (odd) sh]"}},
		{"no Uid line", stat, "Name:\tsh\n", "sh", false, Info{}},
		{"short stat", "42 (sh) S 7", status, "sh", false, Info{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseInfo(42, []byte(tc.stat), []byte(tc.status), []byte(tc.cmdline))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseInfo = %+v, %v; want %+v (ok %v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestReadInfoSelf(t *testing.T) {
	in, err := ReadInfo(os.Getpid())
	if err != nil || in.Pid != os.Getpid() || in.PPid != os.Getppid() || in.UID != os.Geteuid() ||
		!strings.Contains(in.Command, os.Args[0]) {
		t.Fatalf("ReadInfo(self) = %+v, %v", in, err)
	}
	if _, err := ReadInfo(1 << 30); err == nil {
		t.Error("ReadInfo of a pid that cannot exist succeeded")
	}
}
