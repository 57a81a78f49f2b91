package conmon

import (
	"bytes"
	"strings"
	"testing"
)

// TestMainErrors: bad command lines give one line naming the problem and
// the fix, exit 1, and start nothing.
func TestMainErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--frob"}, "Unknown option --frob"},
		{"no cid", []string{"-u", "x", "-r", "/bin/true"}, "pass --cid"},
		{"no cuuid", []string{"-c", "x", "-r", "/bin/true"}, "pass --cuuid"},
		{"no runtime", []string{"-c", "x", "-u", "x"}, "pass --runtime"},
		{"runtime not executable", []string{"-c", "x", "-u", "x", "-r", "/nonexistent/runc"}, "runtime path /nonexistent/runc is not valid"},
		{"exec without spec", []string{"-c", "x", "-u", "x", "-r", "/bin/true", "-e"}, "pass --exec-process-spec"},
		{"attach without exec", []string{"-c", "x", "-u", "x", "-r", "/bin/true", "--exec-attach"}, "--exec-attach needs --exec"},
		{"restore", []string{"-c", "x", "-u", "x", "-r", "/bin/true", "--restore", "/cp"}, "not supported by tether-conmon"},
		{"bad log driver", []string{"-c", "x", "-u", "x", "-r", "/bin/true", "-l", "fluentd:x"}, `"fluentd" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(tc.args, &out, &errb)
			if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line with %q", code, out.String(), errb.String(), tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Main([]string{"--version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "conmon version 2.1.6\n") {
		t.Fatalf("exit %d, %q", code, out.String())
	}
}
