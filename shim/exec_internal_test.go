package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/store"
)

// execTestShim is a shim with a running init (pid 0: never signalled) and
// no runtime: enough to drive the exec bookkeeping directly.
func execTestShim(t *testing.T) *Shim {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	st := store.At(t.TempDir(), "c1")
	if err := st.Make(); err != nil {
		t.Fatal(err)
	}
	if err := st.MakeExecDir(); err != nil {
		t.Fatal(err)
	}
	s := &Shim{id: "c1", st: st, rec: &store.Record{Version: store.Version, ID: "c1", Bundle: "/b", Runtime: "runc", LogMaxFiles: 2},
		log: logrus.NewEntry(logger), execs: map[string]*process{}, byPid: map[int]*process{}}
	s.init = &process{status: StatusRunning, done: make(chan struct{})}
	return s
}

// execTestStart registers a running exec with a log and a pid record, as
// startExec leaves it.
func execTestStart(t *testing.T, s *Shim, id string) *process {
	t.Helper()
	files := s.st.Exec(id)
	log, err := crilog.Open(files.LogPath(), crilog.Options{MaxFiles: s.rec.LogMaxFiles})
	if err != nil {
		t.Fatal(err)
	}
	p := s.newProcess(id, files, &procIO{log: log})
	p.status = StatusRunning
	if err := files.PutPid(proc.Identity{Pid: 1}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.execs[id] = p
	s.mu.Unlock()
	return p
}

func execTestFiles(t *testing.T, s *Shim) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.st.Dir(), "exec"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestExecRetention: finished execs beyond ExecRetention are pruned,
// oldest first, files and all, even when they finish concurrently; running
// execs are never pruned; a pruned ID is free again.
func TestExecRetention(t *testing.T) {
	s := execTestShim(t)
	running := execTestStart(t, s, "running")
	const n = ExecRetention + 60
	procs := make([]*process, n)
	for i := range procs {
		procs[i] = execTestStart(t, s, fmt.Sprintf("x%03d", i))
	}
	// A rotated log of the first one, to be removed with it whenever it
	// is pruned.
	rotated := map[string]string{"x000": "x000.log.1"}
	if err := os.WriteFile(s.st.Exec("x000").LogPath()+".1", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, p := range procs[:n-10] { // concurrently: order unknown
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.finish(p, reaper.Exit{Pid: 1000 + i, Status: i % 7, Timestamp: time.Now()})
		}()
	}
	wg.Wait()
	for i, p := range procs[n-10:] { // then in order: these are the newest
		s.finish(p, reaper.Exit{Pid: 2000 + i, Status: 3, Timestamp: time.Now()})
	}
	s.mu.Lock()
	kept := len(s.execs)
	_, runningKept := s.execs["running"]
	s.mu.Unlock()
	if kept != ExecRetention+1 || !runningKept {
		t.Fatalf("%d execs kept (running kept: %v), want %d finished and the running one", kept, runningKept, ExecRetention)
	}
	execTestCheckFiles(t, s, rotated)
	for _, p := range procs[n-10:] {
		if _, err := p.files.ReadExit(); err != nil {
			t.Errorf("newest exec %s lost its exit record: %v", p.id, err)
		}
	}
	if status, _, _ := running.current(); status != StatusRunning {
		t.Errorf("running exec is %s", status)
	}
	// Keep finishing: the ones finished in order are pruned oldest first.
	for i := range ExecRetention - 9 {
		p := execTestStart(t, s, fmt.Sprintf("y%03d", i))
		s.finish(p, reaper.Exit{Pid: 3000 + i, Status: 0, Timestamp: time.Now()})
	}
	s.mu.Lock()
	_, oldest := s.execs[procs[n-10].id]
	_, newest := s.execs[procs[n-1].id]
	s.mu.Unlock()
	if oldest || !newest {
		t.Errorf("after %d more: oldest of the ordered ones kept %v (want false), newest kept %v (want true)", ExecRetention-9, oldest, newest)
	}
	execTestCheckFiles(t, s, rotated) // by now x000 was pruned, rotated log and all
	s.mu.Lock()
	_, taken := s.execs["x000"]
	s.mu.Unlock()
	if taken {
		t.Error("pruned ID x000 still reserved")
	}
}

// execTestCheckFiles checks that the exec folder holds the running exec's
// pid record, log and exit reserve, and for each kept finished exec its
// exit record, log and the rotated logs the test made for it (rotated, by
// exec ID): nothing else.
func execTestCheckFiles(t *testing.T, s *Shim, rotated map[string]string) {
	t.Helper()
	want := map[string]bool{"running.pid": true, "running.log": true, "running.exit.json.reserve": true}
	s.mu.Lock()
	for id, p := range s.execs {
		if p != nil && id != "running" {
			want[id+".exit.json"], want[id+".log"] = true, true
			if name, ok := rotated[id]; ok {
				want[name] = true
			}
		}
	}
	s.mu.Unlock()
	got := execTestFiles(t, s)
	for _, name := range got {
		if !want[name] {
			t.Errorf("stray file %s", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d files in the exec folder, want %d", len(got), len(want))
	}
}

// TestExecExitReason: an exec's record explains a status that is not its
// own: killed by the shim, or SIGKILL while init exits; never otherwise.
func TestExecExitReason(t *testing.T) {
	for _, tc := range []struct {
		doc        string
		shimKilled bool
		initDone   bool
		status     int
		want       string
	}{
		{"own exit while init runs", false, false, 3, ""},
		{"SIGKILL from a user while init runs", false, false, 137, ""},
		{"SIGKILL after init exited", false, true, 137, ReasonInitExited},
		{"normal exit after init exited", false, true, 0, ""},
		{"SIGTERM after init exited", false, true, 143, ""},
		{"killed by the shim", true, false, 137, ReasonInitExited},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			s := execTestShim(t)
			p := execTestStart(t, s, "e")
			if tc.shimKilled {
				p.killed = ReasonInitExited
			}
			if tc.initDone {
				s.init.status = StatusStopped
			}
			s.finish(p, reaper.Exit{Pid: 1, Status: tc.status, Timestamp: time.Now()})
			exit, err := p.files.ReadExit()
			if err != nil || exit.Status != tc.status || exit.Reason != tc.want {
				t.Fatalf("exit record %+v, %v; want status %d, reason %q", exit, err, tc.status, tc.want)
			}
			if es := p.procState(false); es.Exit == nil || es.Exit.Reason != tc.want || es.Exit.Status != tc.status {
				t.Errorf("exec state %+v", es)
			}
			if p.files.HasPid() {
				t.Errorf("pid record still there after exit: %v", err)
			}
		})
	}
}

// TestExiting: a live process is not exiting; one that was reaped, or a
// pid now naming another process, counts as gone.
func TestExiting(t *testing.T) {
	self, err := proc.Identify(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if exiting(self) {
		t.Error("this test process counts as exiting")
	}
	other := self
	other.StartTime++
	if !exiting(other) {
		t.Error("a pid with another start time is not counted as gone")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := proc.Identify(cmd.Process.Pid)
	cmd.Wait()
	if err == nil && !exiting(child) {
		t.Error("a reaped child does not count as gone")
	}
	if exiting(proc.Identity{}) {
		t.Error("pid 0 counts as exiting")
	}
}

// TestProcessKillRemembersReason: kill records why and signals by
// identity; a process that has stopped is left alone.
func TestProcessKillRemembersReason(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	id, err := proc.Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{id: "k", status: StatusRunning, pid: id, done: make(chan struct{})}
	p.kill(syscall.SIGKILL, "because")
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("sleep ended with %v, want SIGKILL", err)
	}
	if p.killedBy() != "because" {
		t.Errorf("reason %q", p.killedBy())
	}
	stopped := &process{id: "s", status: StatusStopped, pid: id, done: make(chan struct{})}
	stopped.kill(syscall.SIGKILL, "late")
	if stopped.killedBy() != "" {
		t.Error("a stopped process was marked killed")
	}
}

// TestExecExitBeforeRuntimeReturnsWithStdin: an exec'd process given an
// input source can exit (and its IO be closed) before the runtime's exec
// returns; withIO then has no stdin to copy into and must not start the
// copy on nothing (it used to panic in copyStdin, taking the containerd
// shim down with `ctr task exec ... sh -c 'exit 5'` on a loaded host).
func TestExecExitBeforeRuntimeReturnsWithStdin(t *testing.T) {
	s := execTestShim(t)
	log, err := crilog.Open(filepath.Join(t.TempDir(), "log"), crilog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pio := &procIO{log: log}
	src, srcW := io.Pipe()
	defer srcW.Close()
	err = s.withIO(context.Background(), pio, false, true, src, s.st.Exec("e1"), func(*stdioFiles, string) error {
		pio.close() // the process exited and was reaped meanwhile
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A copy started on a nil stdin would panic in its goroutine as soon
	// as the source yields data.
	done := make(chan struct{})
	go func() { srcW.Write([]byte("x")); close(done) }()
	select {
	case <-done:
		t.Fatal("input was taken by a copy although the process's stdin was closed")
	case <-time.After(200 * time.Millisecond):
	}
}
