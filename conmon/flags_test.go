package conmon

import (
	"errors"
	"reflect"
	"testing"
)

// podman43 is the command line podman 4.3.1 passes for `podman run -d`
// with a k8s-file log (recorded with a wrapper script around conmon).
var podman43 = []string{
	"--api-version", "1", "-c", "abc", "-u", "abc", "-r", "/usr/bin/runc",
	"-b", "/run/x/abc/userdata", "-p", "/run/x/abc/userdata/pidfile", "-n", "name",
	"--exit-dir", "/run/libpod/exits", "--full-attach", "-s",
	"-l", "k8s-file:/var/lib/x/abc/userdata/ctr.log", "--log-level", "warning",
	"--runtime-arg", "--log-format=json", "--runtime-arg", "--log",
	"--runtime-arg=/run/x/abc/userdata/oci-log",
	"--conmon-pidfile", "/run/x/abc/userdata/conmon.pid",
	"--exit-command", "/usr/bin/podman", "--exit-command-arg", "--root",
	"--exit-command-arg", "/var/lib/x", "--exit-command-arg", "",
	"--exit-command-arg", "container", "--exit-command-arg", "cleanup", "--exit-command-arg", "abc",
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(*Options) bool
	}{
		{"podman 4.3 run -d", podman43, func(o *Options) bool {
			return o.CID == "abc" && o.CUUID == "abc" && o.Runtime == "/usr/bin/runc" && o.APIVersion &&
				reflect.DeepEqual(o.Rest, []string{"1"}) && o.FullAttach && o.SystemdCgroup &&
				reflect.DeepEqual(o.RuntimeArgs, []string{"--log-format=json", "--log", "/run/x/abc/userdata/oci-log"}) &&
				reflect.DeepEqual(o.ExitCommandArgs, []string{"--root", "/var/lib/x", "", "container", "cleanup", "abc"}) &&
				reflect.DeepEqual(o.LogPaths, []string{"k8s-file:/var/lib/x/abc/userdata/ctr.log"}) &&
				o.ConmonPidFile == "/run/x/abc/userdata/conmon.pid" && o.LogSizeMax == -1
		}},
		{"repeated -l", []string{"-l", "k8s-file:/a", "-l", "journald:", "-l", "passthrough"}, func(o *Options) bool {
			return reflect.DeepEqual(o.LogPaths, []string{"k8s-file:/a", "journald:", "passthrough"})
		}},
		{"grouped short flags", []string{"-ti", "-e"}, func(o *Options) bool { return o.Terminal && o.Stdin && o.Exec }},
		{"short with attached value", []string{"-cID"}, func(o *Options) bool { return o.CID == "ID" }},
		{"long with =", []string{"--cid=x", "--log-size-max=4096"}, func(o *Options) bool { return o.CID == "x" && o.LogSizeMax == 4096 }},
		{"value that looks like a flag", []string{"--runtime-arg", "--root", "--runtime-arg", "/r"}, func(o *Options) bool {
			return reflect.DeepEqual(o.RuntimeArgs, []string{"--root", "/r"})
		}},
		{"empty value kept", []string{"--exit-command-arg", "", "--exit-command-arg", "x"}, func(o *Options) bool {
			return reflect.DeepEqual(o.ExitCommandArgs, []string{"", "x"})
		}},
		{"last string wins", []string{"-n", "a", "--name", "b"}, func(o *Options) bool { return o.Name == "b" }},
		{"double dash ends options", []string{"--", "-t"}, func(o *Options) bool { return !o.Terminal && reflect.DeepEqual(o.Rest, []string{"-t"}) }},
		{"5.x exec", []string{"--api-version", "1", "-c", "c", "-u", "s", "-r", "/r", "-b", "/b", "-p", "/b/pid",
			"--persist-dir", "/p", "-e", "--exec-attach", "--exec-process-spec", "/b/spec", "--exit-delay", "3", "--timeout", "0"},
			func(o *Options) bool {
				return o.Exec && o.ExecAttach && o.ExecProcessSpec == "/b/spec" && o.PersistDir == "/p" && o.ExitDelay == 3
			}},
		{"defaults", nil, func(o *Options) bool {
			return o.SocketDirPath == DefaultSocketDir && o.LogSizeMax == -1 && o.LogGlobalSizeMax == -1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Parse(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Fatalf("parsed %+v", o)
			}
			back, err := Parse(o.Args())
			if err != nil || !reflect.DeepEqual(back, withRest(o)) {
				t.Fatalf("Args() does not round-trip: %v\n%+v\n%+v", err, back, o)
			}
		})
	}
}

// withRest is o as Args renders it: positional arguments are dropped.
func withRest(o *Options) *Options {
	c := *o
	c.Rest = nil
	return &c
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown long", []string{"--frobnicate"}, "option parsing failed: Unknown option --frobnicate"},
		{"unknown short", []string{"-Z"}, "option parsing failed: Unknown option -Z"},
		{"missing value", []string{"-c"}, "option parsing failed: Missing argument for -c"},
		{"missing long value", []string{"--exit-dir"}, "option parsing failed: Missing argument for --exit-dir"},
		{"bad integer", []string{"--log-size-max", "lots"}, `option parsing failed: Cannot parse integer value "lots" for --log-size-max`},
		{"value on a flag", []string{"--terminal=yes"}, "option parsing failed: Option --terminal does not take a value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.args)
			if !errors.Is(err, ErrUsage) || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
