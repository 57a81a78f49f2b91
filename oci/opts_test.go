package oci

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestCreateOptsArgs(t *testing.T) {
	f := os.Stdin
	tests := []struct {
		name string
		opts CreateOpts
		want []string
	}{
		{"zero", CreateOpts{}, nil},
		{"pid file absolute", CreateOpts{PidFile: "/run/x/pid"}, []string{"--pid-file", "/run/x/pid"}},
		{"pid file relative", CreateOpts{PidFile: "pid"}, []string{"--pid-file", mustAbs(t, "pid")}},
		{"console socket", CreateOpts{ConsoleSocket: "/tmp/c.sock"}, []string{"--console-socket", "/tmp/c.sock"}},
		{"no pivot", CreateOpts{NoPivot: true}, []string{"--no-pivot"}},
		{"no new keyring", CreateOpts{NoNewKeyring: true}, []string{"--no-new-keyring"}},
		{"extra files", CreateOpts{ExtraFiles: []*os.File{f, f}}, []string{"--preserve-fds", "2"}},
		{"io only adds nothing", CreateOpts{IO: IO{Stdout: f}}, nil},
		{"all", CreateOpts{PidFile: "/p", ConsoleSocket: "/s", NoPivot: true, NoNewKeyring: true, ExtraFiles: []*os.File{f}},
			[]string{"--pid-file", "/p", "--console-socket", "/s", "--no-pivot", "--no-new-keyring", "--preserve-fds", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.args()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("args() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExecOptsArgs(t *testing.T) {
	f := os.Stdin
	base := []string{"--detach", "--process", "/tmp/p.json", "--pid-file", "/tmp/pid"}
	tests := []struct {
		name    string
		opts    ExecOpts
		process string
		pid     string
		want    []string
	}{
		{"zero always detaches", ExecOpts{}, "/tmp/p.json", "/tmp/pid", base},
		{"relative paths", ExecOpts{}, "p.json", "pid",
			[]string{"--detach", "--process", mustAbs(t, "p.json"), "--pid-file", mustAbs(t, "pid")}},
		{"console socket", ExecOpts{ConsoleSocket: "/s"}, "/tmp/p.json", "/tmp/pid", append(base[:5:5], "--console-socket", "/s")},
		{"extra files", ExecOpts{ExtraFiles: []*os.File{f, f, f}}, "/tmp/p.json", "/tmp/pid", append(base[:5:5], "--preserve-fds", "3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.args(tt.process, tt.pid)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("args() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKillOptsArgs(t *testing.T) {
	tests := []struct {
		name string
		opts KillOpts
		want []string
	}{
		{"zero", KillOpts{}, nil},
		{"all", KillOpts{All: true}, []string{"--all"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.opts.args(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("args() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDeleteOptsArgs(t *testing.T) {
	tests := []struct {
		name string
		opts DeleteOpts
		want []string
	}{
		{"zero", DeleteOpts{}, nil},
		{"force", DeleteOpts{Force: true}, []string{"--force"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.opts.args(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("args() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCommandLine checks the one function that builds runtime command lines.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		rt   Runtime
		args []string
		want []string
	}{
		{"defaults", Runtime{Command: "true"}, []string{"state", "c1"},
			[]string{"true", "--log", "/l.json", "--log-format", "json", "state", "c1"}},
		{"root", Runtime{Command: "true", Root: "/run/r"}, []string{"list", "--format", "json"},
			[]string{"true", "--root", "/run/r", "--log", "/l.json", "--log-format", "json", "list", "--format", "json"}},
		{"global args before subcommand", Runtime{Command: "true", Root: "/r", Args: []string{"--cgroup-manager=disabled", "--debug"}}, []string{"kill", "c1", "9"},
			[]string{"true", "--root", "/r", "--log", "/l.json", "--log-format", "json", "--cgroup-manager=disabled", "--debug", "kill", "c1", "9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := tt.rt.command(context.Background(), "/l.json", tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cmd.Args, tt.want) {
				t.Errorf("Args = %q, want %q", cmd.Args, tt.want)
			}
			// Its own process group (killed whole on timeout), but no
			// session and no parent-death signal: its children become the
			// container's processes.
			if a := cmd.SysProcAttr; a == nil || !a.Setpgid || a.Setsid || a.Pdeathsig != 0 {
				t.Errorf("SysProcAttr = %+v, want only Setpgid", cmd.SysProcAttr)
			}
		})
	}
}
