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

// The detached monitor's command line names one --root and one --id, its
// store folder's, though podman's exit command arguments carry --root
// too: otherwise the restore verdict would not know the monitor as the
// folder's live shim and the watcher would adopt a container that has one.
func TestDaemonArgsNameOneShim(t *testing.T) {
	o, err := Parse([]string{"--cid", "c1", "--cuuid", "u", "-r", "/bin/true", "--exit-dir", "/run/x/exits",
		"--exit-command", "/usr/bin/podman", "--exit-command-arg", "--root", "--exit-command-arg", "/var/lib/s",
		"--exit-command-arg", "--id", "--exit-command-arg", "other", "-l", "k8s-file:/tmp/l", "--api-version", "1"})
	if err != nil {
		t.Fatal(err)
	}
	args, err := daemonArgs(o)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, a := range args {
		count[a]++
	}
	if count["--root"] != 1 || count["--id"] != 1 {
		t.Fatalf("daemon args name --root %d times and --id %d times: %q", count["--root"], count["--id"], args)
	}
	action, root, cid, rest := cutServeArgs(args)
	if action != "serve" || root != "/run/x/tether-conmon" || cid != "c1" {
		t.Fatalf("serve args: %q %q %q", action, root, cid)
	}
	back, err := Parse(rest)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeOptions(back)
	if err != nil {
		t.Fatal(err)
	}
	if d.Role != RoleDaemon || d.CID != "c1" || len(d.ExitCommandArgs) != 4 || d.ExitCommandArgs[1] != "/var/lib/s" {
		t.Fatalf("decoded options: %+v", d)
	}
}
