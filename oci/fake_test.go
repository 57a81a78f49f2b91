package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakePreamble parses the global flags like runc does, leaving the
// subcommand in "$@", the log path in $log, and recording the full argv
// (one argument per line) in $0.argv.
const fakePreamble = `#!/bin/sh
printf '%s\n' "$@" > "$0.argv"
log=""
while [ $# -gt 0 ]; do
	case "$1" in
	--log) log="$2"; shift 2 ;;
	--log-format|--root) shift 2 ;;
	--*=*) shift ;;
	*) break ;;
	esac
done
`

// fakeRuntime writes a shell script named "fakert" into a temp dir and
// returns a Runtime that runs it. body runs after fakePreamble.
func fakeRuntime(t *testing.T, body string) (*Runtime, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fakert")
	if err := os.WriteFile(path, []byte(fakePreamble+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Runtime{Command: path, LogDir: t.TempDir()}, path
}

// TestFakeRuntimeErrors checks that the runtime's own words reach the error.
func TestFakeRuntimeErrors(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantMsg    string
		wantStatus int
		wantIs     error
	}{
		{
			name: "log error message",
			body: `echo '{"level":"warning","msg":"just a warning","time":"2026-01-01T00:00:00Z"}' >> "$log"
echo '{"level":"error","msg":"fake: something broke","time":"2026-01-01T00:00:00Z"}' >> "$log"
echo 'stderr noise' >&2
exit 1`,
			wantMsg: "fakert start c1: fake: something broke", wantStatus: 1,
		},
		{
			name:    "crun field order",
			body:    `echo '{"msg":"container ` + "`c1`" + ` is not running","level":"error","time":"2026-01-01T00:00:00.000001Z"}' >> "$log"; exit 1`,
			wantMsg: "fakert start c1: container `c1` is not running", wantStatus: 1, wantIs: ErrNotRunning,
		},
		{
			name:    "not found sentinel",
			body:    `echo '{"level":"error","msg":"container does not exist"}' >> "$log"; exit 1`,
			wantMsg: "fakert start c1: container does not exist", wantStatus: 1, wantIs: ErrNotFound,
		},
		{
			name:    "stderr fallback",
			body:    `printf 'start: unrecognized option\nTry --help\n' >&2; exit 64`,
			wantMsg: "fakert start c1: start: unrecognized option; Try --help", wantStatus: 64,
		},
		{
			name:    "exit status only",
			body:    `exit 3`,
			wantMsg: "fakert start c1: exit status 3", wantStatus: 3,
		},
		{
			name:    "killed by signal",
			body:    `kill -KILL $$`,
			wantMsg: "fakert start c1: exit status 137", wantStatus: 137,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, _ := fakeRuntime(t, tt.body)
			err := rt.Start(context.Background(), "c1")
			var rerr *RuntimeError
			if !errors.As(err, &rerr) {
				t.Fatalf("err = %v (%T), want *RuntimeError", err, err)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantMsg)
			}
			if rerr.Status != tt.wantStatus || rerr.Op != "start" || rerr.ID != "c1" || rerr.Command != "fakert" {
				t.Errorf("RuntimeError = %+v", rerr)
			}
			if got := errors.Unwrap(err); got != tt.wantIs {
				t.Errorf("Unwrap = %v, want %v", got, tt.wantIs)
			}
			if entries, _ := os.ReadDir(rt.LogDir); len(entries) != 0 {
				t.Errorf("LogDir not cleaned up: %v", entries)
			}
		})
	}
}

// TestFakeRuntimeCreateError checks create's error path; the runtime's
// stderr is the container's, so only the log is used.
func TestFakeRuntimeCreateError(t *testing.T) {
	rt, _ := fakeRuntime(t, `echo '{"level":"error","msg":"runc create failed: container with given ID already exists"}' >> "$log"; exit 1`)
	err := rt.Create(context.Background(), "c1", t.TempDir(), nil)
	if !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("err = %v, want ErrAlreadyExists", err)
	}
	if want := "fakert create c1: runc create failed: container with given ID already exists"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestCreateMissingBundle(t *testing.T) {
	rt, _ := fakeRuntime(t, `exit 0`)
	err := rt.Create(context.Background(), "c1", filepath.Join(t.TempDir(), "nope"), nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "fakert create c1: bundle: ") {
		t.Fatalf("err = %v, want a bundle error wrapping os.ErrNotExist", err)
	}
}

// TestFakeRuntimeArgv checks the argv the runtime process really receives.
func TestFakeRuntimeArgv(t *testing.T) {
	rt, path := fakeRuntime(t, `exit 0`)
	rt.Root = "/run/fake"
	rt.Args = []string{"--cgroup-manager=disabled"}
	if err := rt.Kill(context.Background(), "c1", syscall.SIGTERM, &KillOpts{All: true}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path + ".argv")
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(argv) != 11 {
		t.Fatalf("argv = %q", argv)
	}
	logPath := argv[3]
	if filepath.Dir(logPath) != rt.LogDir {
		t.Errorf("log file %q not in LogDir %q", logPath, rt.LogDir)
	}
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log file %q not removed: %v", logPath, err)
	}
	want := []string{"--root", "/run/fake", "--log", logPath, "--log-format", "json", "--cgroup-manager=disabled", "kill", "--all", "c1", "15"}
	if !reflect.DeepEqual(argv, want) {
		t.Errorf("argv = %q, want %q", argv, want)
	}
}

func TestFakeRuntimeStateAndList(t *testing.T) {
	rt, _ := fakeRuntime(t, `case "$1" in
state) echo '{"ociVersion":"1.0.2","id":"'"$2"'","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-11-29T19:52:17.571119549Z","annotations":{"a":"b"},"owner":""}' ;;
list) echo null ;;
--version) printf 'fakert version 9.8.7\ncommit: x\n' ;;
esac
echo 'stderr is not stdout' >&2`)
	ctx := context.Background()
	st, err := rt.State(ctx, "c9")
	if err != nil {
		t.Fatal(err)
	}
	want := &State{OCIVersion: "1.0.2", ID: "c9", Pid: 42, Status: StatusRunning, Bundle: "/b", Rootfs: "/b/rootfs",
		Created: time.Date(2026, 11, 29, 19, 52, 17, 571119549, time.UTC), Annotations: map[string]string{"a": "b"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("State = %+v, want %+v", st, want)
	}
	list, err := rt.List(ctx)
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("List = %#v, %v; want empty non-nil", list, err)
	}
	v, err := rt.Version(ctx)
	if err != nil || v != "9.8.7" {
		t.Errorf("Version = %q, %v", v, err)
	}
}

func TestFakeRuntimeBadJSON(t *testing.T) {
	rt, _ := fakeRuntime(t, `echo '{not json'`)
	_, err := rt.State(context.Background(), "c1")
	var serr *json.SyntaxError
	if !errors.As(err, &serr) || !strings.HasPrefix(err.Error(), "fakert state c1: parse output: ") {
		t.Fatalf("err = %v, want a wrapped JSON syntax error", err)
	}
}

// TestFakeRuntimeExec checks the exec plumbing: --detach, the process file
// contents and the pid read back from --pid-file.
func TestFakeRuntimeExec(t *testing.T) {
	rt, path := fakeRuntime(t, `shift
proc=""; pidfile=""; detach=""
while [ $# -gt 1 ]; do
	case "$1" in
	--process) proc="$2"; shift 2 ;;
	--pid-file) pidfile="$2"; shift 2 ;;
	--detach) detach=1; shift ;;
	*) shift ;;
	esac
done
[ -n "$detach" ] || { echo '{"level":"error","msg":"no --detach"}' >> "$log"; exit 1; }
cp "$proc" "$0.process"
echo 4242 > "$pidfile"`)
	spec := specs.Process{Args: []string{"sh", "-c", "exit 7"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	pid, err := rt.Exec(context.Background(), "c1", spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pid != 4242 {
		t.Errorf("pid = %d, want 4242", pid)
	}
	data, err := os.ReadFile(path + ".process")
	if err != nil {
		t.Fatal(err)
	}
	var got specs.Process
	if err := json.Unmarshal(data, &got); err != nil || !reflect.DeepEqual(got, spec) {
		t.Errorf("process file = %s (%v)", data, err)
	}
	if entries, _ := os.ReadDir(rt.LogDir); len(entries) != 0 {
		t.Errorf("LogDir not cleaned up: %v", entries)
	}

	t.Run("caller files kept", func(t *testing.T) {
		dir := t.TempDir()
		opts := &ExecOpts{ProcessFile: filepath.Join(dir, "p.json"), PidFile: filepath.Join(dir, "pid")}
		if pid, err := rt.Exec(context.Background(), "c1", spec, opts); err != nil || pid != 4242 {
			t.Fatalf("Exec = %d, %v", pid, err)
		}
		for _, p := range []string{opts.ProcessFile, opts.PidFile} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	})
}

func TestFakeRuntimeTimeout(t *testing.T) {
	rt, _ := fakeRuntime(t, `sleep 5; exit 0`)
	rt.Timeout = 200 * time.Millisecond
	start := time.Now()
	err := rt.Start(context.Background(), "c1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v; the runtime was not killed promptly", d)
	}
	if !strings.HasPrefix(err.Error(), "fakert start c1: ") {
		t.Errorf("Error() = %q", err)
	}

	t.Run("caller deadline wins", func(t *testing.T) {
		rt.Timeout = time.Hour
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := rt.Start(ctx, "c1"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
	})
}

// countingMonitor is a ProcessMonitor that reaps through cmd.Process.Wait
// (never cmd.Wait), like a reaper that does not know about exec.Cmd.
type countingMonitor struct {
	mu     sync.Mutex
	starts []string
}

func (m *countingMonitor) Start(cmd *exec.Cmd) (func() (int, error), error) {
	m.mu.Lock()
	m.starts = append(m.starts, strings.Join(cmd.Args, " "))
	m.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() (int, error) {
		ps, err := cmd.Process.Wait()
		return exitStatus(ps, err)
	}, nil
}

func TestCustomMonitor(t *testing.T) {
	rt, _ := fakeRuntime(t, `echo '{"id":"c1","pid":1,"status":"created","bundle":"/b","created":"2026-01-01T00:00:00Z"}'
[ "$1" = kill ] && { echo '{"level":"error","msg":"container not running"}' >> "$log"; exit 1; }
exit 0`)
	m := &countingMonitor{}
	rt.Monitor = m
	st, err := rt.State(context.Background(), "c1")
	if err != nil || st.Status != StatusCreated {
		t.Fatalf("State = %+v, %v", st, err)
	}
	if err := rt.Kill(context.Background(), "c1", syscall.SIGKILL, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Kill err = %v, want ErrNotRunning", err)
	}
	if len(m.starts) != 2 {
		t.Errorf("monitor started %d commands, want 2: %q", len(m.starts), m.starts)
	}
}

func TestBinaryNotFound(t *testing.T) {
	for _, command := range []string{"tether-no-such-runtime", "/nonexistent/dir/runc"} {
		t.Run(command, func(t *testing.T) {
			rt := &Runtime{Command: command}
			_, err := rt.State(context.Background(), "c1")
			if !errors.Is(err, ErrBinaryNotFound) {
				t.Fatalf("err = %v, want ErrBinaryNotFound", err)
			}
			for _, s := range []string{command, "install", "--runtime"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestInvalidIDRejected(t *testing.T) {
	rt, path := fakeRuntime(t, `exit 0`)
	ctx := context.Background()
	calls := map[string]func() error{
		"create": func() error { return rt.Create(ctx, "../x", t.TempDir(), nil) },
		"start":  func() error { return rt.Start(ctx, "a/b") },
		"state":  func() error { _, err := rt.State(ctx, ""); return err },
		"kill":   func() error { return rt.Kill(ctx, "..", syscall.SIGKILL, nil) },
		"delete": func() error { return rt.Delete(ctx, "a b", &DeleteOpts{Force: true}) },
		"pause":  func() error { return rt.Pause(ctx, "/") },
		"resume": func() error { return rt.Resume(ctx, ".") },
		"exec":   func() error { _, err := rt.Exec(ctx, "x/../y", specs.Process{}, nil); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrInvalidID) {
				t.Errorf("err = %v, want ErrInvalidID", err)
			}
		})
	}
	if _, err := os.Stat(path + ".argv"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the runtime was run for an invalid id")
	}
}
