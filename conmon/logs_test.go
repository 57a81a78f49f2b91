package conmon

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseLogDrivers(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []logDriver
		err  string
	}{
		{"k8s-file with path", []string{"k8s-file:/a/ctr.log"}, []logDriver{{driverK8sFile, "/a/ctr.log"}}, ""},
		{"bare path is k8s-file", []string{"/a/ctr.log"}, []logDriver{{driverK8sFile, "/a/ctr.log"}}, ""},
		{"journald with colon", []string{"journald:"}, []logDriver{{driverJournald, ""}}, ""},
		{"several", []string{"journald", "k8s-file:/x", "none"}, []logDriver{{driverJournald, ""}, {driverK8sFile, "/x"}, {driverNone, ""}}, ""},
		{"off and null are none", []string{"off", "null:"}, []logDriver{{driverNone, ""}, {driverNone, ""}}, ""},
		{"passthrough", []string{"passthrough"}, []logDriver{{driverPassthrough, ""}}, ""},
		{"k8s-file without path", []string{"k8s-file:"}, nil, "needs a path"},
		{"unknown driver", []string{"syslog:x"}, nil, `log driver "syslog" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLogDrivers(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestWriteSync: the sync messages podman decodes, one JSON line each.
func TestWriteSync(t *testing.T) {
	for _, tc := range []struct {
		data int
		msg  string
		want string
	}{
		{4242, "", `{"data":4242}` + "\n"},
		{-1, `runc create failed: "x" not found`, `{"data":-1,"message":"runc create failed: \"x\" not found"}` + "\n"},
		{0, "", `{"data":0}` + "\n"},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		writeSync(w, tc.data, tc.msg)
		w.Close()
		buf := make([]byte, 512)
		n, _ := r.Read(buf)
		r.Close()
		if string(buf[:n]) != tc.want {
			t.Errorf("writeSync(%d, %q) = %q, want %q", tc.data, tc.msg, buf[:n], tc.want)
		}
	}
}

func TestLastRuntimeLogError(t *testing.T) {
	path := t.TempDir() + "/oci-log"
	os.WriteFile(path, []byte(`{"level":"warning","msg":"w"}`+"\n"+`{"level":"error","msg":"first"}`+"\n"+`{"level":"error","msg":"exec: \"nosuch\": executable file not found in $PATH"}`+"\n"), 0o600)
	for _, args := range [][]string{{"--log-format=json", "--log", path}, {"--log=" + path}} {
		if got := lastRuntimeLogError(args); got != `exec: "nosuch": executable file not found in $PATH` {
			t.Errorf("%v: %q", args, got)
		}
	}
	if got := lastRuntimeLogError([]string{"--systemd-cgroup"}); got != "" {
		t.Errorf("no --log: %q", got)
	}
}
