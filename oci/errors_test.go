package oci

import (
	"errors"
	"strings"
	"testing"
)

// TestClassify uses the messages observed from runc 1.1.5 and crun 1.8.1
// (and a few from other versions, noted).
func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want error
	}{
		{"runc state missing", "container does not exist", ErrNotFound},
		{"runc exec missing", "exec failed: container does not exist", ErrNotFound},
		{"crun newer missing", "container `c1` does not exist: error opening file `/run/crun/c1/status`: No such file or directory", ErrNotFound},
		{"crun 1.8 status file missing", "error opening file `/run/crun/c1/status`: No such file or directory", ErrNotFound},
		{"crun 1.8 delete missing", "cannot open directory '/run/crun/c1': No such file or directory", ErrNotFound},
		{"runc create existing", "runc create failed: container with given ID already exists", ErrAlreadyExists},
		{"runc 1.0 create existing", "container with id exists: c1", ErrAlreadyExists},
		{"crun create existing", "container `c1` already exists", ErrAlreadyExists},
		{"runc kill stopped", "container not running", ErrNotRunning},
		{"runc older kill finished", "os: process already finished", ErrNotRunning},
		{"runc start stopped", "cannot start a container that has stopped", ErrNotRunning},
		{"runc exec stopped", "exec failed: cannot exec in a stopped container", ErrNotRunning},
		{"crun pause stopped", "the container `c1` is not running", ErrNotRunning},
		{"crun start stopped", "container `c1` is not running", ErrNotRunning},
		{"crun kill stopped", "kill container: No such process", ErrNotRunning},
		{"crun kill stopped and reaped", "open pidfd: No such process", ErrNotRunning},
		{"crun pause stopped and reaped", "the container `c1` is not running: No such process", ErrNotRunning},
		{"empty", "", nil},
		{"runc resume not paused", "container not paused", nil},
		{"runc delete running", "cannot delete container c2 that is not stopped: running", nil},
		{"crun delete running", "the container `c2` is not in `created` or `stopped` state", nil},
		{"runc missing process binary", `runc create failed: unable to start container process: exec: "/bin/nonexistent": stat /bin/nonexistent: no such file or directory`, ErrCommandNotFound},
		{"runc process binary not on PATH", `exec failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH`, ErrCommandNotFound},
		{"runc process binary not executable", `runc create failed: unable to start container process: exec: "/etc/passwd": permission denied`, ErrCommandNotExecutable},
		{"crun missing process binary", "executable file `/bin/nonexistent` not found in $PATH: No such file or directory", ErrCommandNotFound},
		{"crun process binary not executable", "open executable: Permission denied", ErrCommandNotExecutable},
		{"crun process binary a folder", "open executable: Operation not permitted", ErrCommandNotExecutable},
		{"runc missing cwd", `runc create failed: unable to start container process: error during container init: error changing to cwd: chdir to cwd ("/nope") set in config.json failed: no such file or directory`, nil},
		{"crun missing rootfs", "make `rootfs` private: No such file or directory", nil},
		{"runc bad json", "runc create failed: invalid character 'b' looking for beginning of object key string", nil},
		{"unrelated file exists", "mkdir /foo: file exists", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.msg); got != tt.want {
				t.Errorf("classify(%q) = %v, want %v", tt.msg, got, tt.want)
			}
		})
	}
}

func TestRuntimeError(t *testing.T) {
	tests := []struct {
		name    string
		err     *RuntimeError
		want    string
		wantErr error
	}{
		{"message", &RuntimeError{Command: "runc", Op: "create", ID: "c1", Status: 1, Msg: "boom"}, "runc create c1: boom", nil},
		{"no message", &RuntimeError{Command: "crun", Op: "kill", ID: "c1", Status: 3}, "crun kill c1: exit status 3", nil},
		{"no id", &RuntimeError{Command: "runc", Op: "list", Status: 1, Msg: "x"}, "runc list: x", nil},
		{"sentinel", &RuntimeError{Command: "runc", Op: "state", ID: "c1", Status: 1, Msg: "container does not exist"}, "runc state c1: container does not exist", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if got := tt.err.Unwrap(); got != tt.wantErr {
				t.Errorf("Unwrap() = %v, want %v", got, tt.wantErr)
			}
			if tt.wantErr != nil && !errors.Is(tt.err, tt.wantErr) {
				t.Errorf("errors.Is(%v) = false", tt.wantErr)
			}
		})
	}
}

func TestLastLogError(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want string
	}{
		{"empty", "", ""},
		{"runc shape", `{"level":"error","msg":"container does not exist","time":"2026-01-01T00:00:00Z"}` + "\n", "container does not exist"},
		{"crun shape", `{"msg":"container ` + "`c1`" + ` already exists","level":"error","time":"2026-01-01T00:00:00.1Z"}` + "\n", "container `c1` already exists"},
		{"last error wins", `{"level":"error","msg":"first"}` + "\n" + `{"level":"error","msg":"second"}` + "\n", "second"},
		{"warnings ignored", `{"level":"error","msg":"real"}` + "\n" + `{"level":"warning","msg":"later warning"}` + "\n", "real"},
		{"only warnings", `{"level":"warning","msg":"w"}` + "\n" + `{"level":"info","msg":"i"}`, ""},
		{"fatal counts", `{"level":"fatal","msg":"dead"}`, "dead"},
		{"multi-line message", `{"level":"error","msg":"No help topic for 'badsub'\n"}`, "No help topic for 'badsub'"},
		{"message lines joined", `{"level":"error","msg":"a\nb\n"}`, "a; b"},
		{"non-JSON line", "plain text failure\n", "plain text failure"},
		{"crlf and blank lines", "\r\n\r\n" + `{"level":"error","msg":"x"}` + "\r\n", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lastLogError([]byte(tt.log)); got != tt.want {
				t.Errorf("lastLogError() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOneLineBounded(t *testing.T) {
	got := oneLine(strings.Repeat("x", 3*maxMsgLen))
	if len(got) != maxMsgLen+3 || strings.Contains(got, "\n") {
		t.Errorf("len = %d", len(got))
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"simple", "c1", true},
		{"all allowed chars", "A-z_0.9+x", true},
		{"long hex", strings.Repeat("ab01", 16), true},
		{"empty", "", false},
		{"dot", ".", false},
		{"dotdot", "..", false},
		{"slash", "a/b", false},
		{"traversal", "../x", false},
		{"space", "a b", false},
		{"newline", "a\nb", false},
		{"unicode", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateID(tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("validateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidID) {
				t.Errorf("error %v does not wrap ErrInvalidID", err)
			}
		})
	}
}
