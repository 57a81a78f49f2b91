package ctrd

// The runtime v2 contract without containerd: start and delete by hand, a
// real ttrpc client, and a fake events service.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/ctrdtest"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/sweep"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/shim/containerd"
	"github.com/tether-run/tether/store"
	"google.golang.org/protobuf/proto"
)

// protoEnv is one hand-driven shim's world.
type protoEnv struct {
	t      *testing.T
	dir    string
	ns     string
	events *ctrdtest.Events
}

func newProtoEnv(t *testing.T) *protoEnv {
	requireContainerd(t)
	dir, err := os.MkdirTemp("", "ctp")
	if err != nil {
		t.Fatal(err)
	}
	e := &protoEnv{t: t, dir: dir, ns: uniq("tp")}
	if e.events, err = ctrdtest.NewEvents(filepath.Join(dir, "ev.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.events.Stop()
		bundles, _ := filepath.Glob(filepath.Join(dir, "b-*"))
		for _, b := range bundles {
			id := strings.TrimPrefix(filepath.Base(b), "b-")
			f := store.At(filepath.Dir(containerd.StateDir(b, id)), id)
			sweep.KillRecorded(f.Dir())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			(&oci.Runtime{Command: "runc", Root: "/run/containerd/runc/" + e.ns}).Delete(ctx, id, &oci.DeleteOpts{Force: true})
			cancel()
		}
		os.RemoveAll("/run/containerd/runc/" + e.ns)
		os.RemoveAll(dir)
	})
	return e
}

// bundle writes a busybox bundle for task id running args.
func (e *protoEnv) bundle(id string, args ...string) string {
	b := filepath.Join(e.dir, "b-"+id)
	if err := bundle.Write(b, bundle.Options{Args: args}); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// run runs the binary's action for id in bundle b, as containerd does.
func (e *protoEnv) run(b, id, action string, stdin []byte) (stdout []byte, stderr string, err error) {
	cmd := exec.Command(filepath.Join(shimBinDir(e.t), "containerd-shim-tether-v1"), "-namespace", e.ns,
		"-address", filepath.Join(e.dir, "c.sock"), "-publish-binary", "/bin/true", "-id", id,
		"-socket-dir", e.dir, action)
	cmd.Dir = b
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+e.events.Path)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.String(), err
}

// start runs start and returns a ttrpc client of the task service.
func (e *protoEnv) start(b, id string) (taskapi.TTRPCTaskService, string) {
	e.t.Helper()
	out, stderr, err := e.run(b, id, "start", nil)
	if err != nil || stderr != "" {
		e.t.Fatalf("start: %v, stderr %q", err, stderr)
	}
	addr := string(out)
	if !strings.HasPrefix(addr, "unix://"+e.dir+"/") || strings.ContainsAny(addr, "\n{") {
		e.t.Fatalf("start printed %q, want a plain unix:// address", addr)
	}
	if got, _ := os.ReadFile(filepath.Join(b, "address")); string(got) != addr {
		e.t.Fatalf("address file %q, want %q", got, addr)
	}
	path := strings.TrimPrefix(addr, "unix://")
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		e.t.Fatalf("socket %s: %v mode %v, want 0600", path, err, st.Mode().Perm())
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		e.t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	e.t.Cleanup(func() { client.Close() })
	return taskapi.NewTTRPCTaskClient(client), path
}

func TestContainerdProtocol(t *testing.T) {
	e := newProtoEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := uniq("p")
	b := e.bundle(id, "sleep", "1000")
	task, sock := e.start(b, id)
	conn, err := task.Connect(ctx, &taskapi.ConnectRequest{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	shimIdent, _ := proc.Identify(int(conn.ShimPid))
	cr, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	// A Wait that blocks must not hold up State or Connect on the same
	// connection.
	waitDone := make(chan *taskapi.WaitResponse, 1)
	go func() {
		w, err := task.Wait(ctx, &taskapi.WaitRequest{ID: id})
		if err != nil {
			t.Error(err)
		}
		waitDone <- w
	}()
	time.Sleep(100 * time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
			defer qcancel()
			st, err := task.State(qctx, &taskapi.StateRequest{ID: id})
			if err != nil || st.Status != tasktypes.Status_RUNNING || st.Pid != cr.Pid {
				t.Errorf("state while a Wait blocks: %v %v", st, err)
			}
			if c, err := task.Connect(qctx, &taskapi.ConnectRequest{ID: id}); err != nil || c.TaskPid != cr.Pid {
				t.Errorf("connect while a Wait blocks: %v %v", c, err)
			}
		}()
	}
	wg.Wait()
	if _, err := task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	w := <-waitDone
	if w == nil || w.ExitStatus != 137 {
		t.Fatalf("wait: %v, want 137", w)
	}
	d, err := task.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	if err != nil || d.ExitStatus != 137 || d.Pid != cr.Pid {
		t.Fatalf("delete: %v %v", d, err)
	}
	task.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id})
	if !shimIdent.WaitExit(5 * time.Second) {
		t.Fatal("shim still runs after Shutdown")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after shutdown: %v", err)
	}
	got := ctrdtest.Topics(e.events.Received())
	want := []string{containerd.TopicTaskCreate, containerd.TopicTaskStart, containerd.TopicTaskExit, containerd.TopicTaskDelete}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestContainerdDeleteByHand: the shim of a task that exited 3 is killed;
// delete reports 3 and its time, within 5 s, twice (idempotent). For a
// running task delete kills init and reports 137 with a reason.
func TestContainerdDeleteByHand(t *testing.T) {
	e := newProtoEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name   string
		args   []string
		status uint32
	}{
		{"exited", []string{"sh", "-c", "exit 3"}, 3},
		{"running", []string{"sleep", "1000"}, uint32(containerd.StatusKilled)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := uniq("h")
			b := e.bundle(id, tc.args...)
			task, _ := e.start(b, id)
			conn, err := task.Connect(ctx, &taskapi.ConnectRequest{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			cr, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: b})
			if err != nil {
				t.Fatal(err)
			}
			initIdent, _ := proc.Identify(int(cr.Pid))
			task.Start(ctx, &taskapi.StartRequest{ID: id})
			var exitedAt time.Time
			if tc.status == 3 {
				w, err := task.Wait(ctx, &taskapi.WaitRequest{ID: id})
				if err != nil || w.ExitStatus != 3 {
					t.Fatalf("wait: %v %v", w, err)
				}
				exitedAt = w.ExitedAt.AsTime()
			}
			syscall.Kill(int(conn.ShimPid), syscall.SIGKILL)
			for i := range 2 {
				begin := time.Now()
				out, stderr, err := e.run(b, id, "delete", nil)
				if err != nil {
					t.Fatalf("delete %d: %v: %s", i, err, stderr)
				}
				if d := time.Since(begin); d > 5*time.Second {
					t.Fatalf("delete took %v", d)
				}
				var resp taskapi.DeleteResponse
				if err := proto.Unmarshal(out, &resp); err != nil {
					t.Fatalf("delete output is not a DeleteResponse: %v", err)
				}
				if resp.ExitStatus != tc.status || resp.Pid != cr.Pid {
					t.Fatalf("delete %d: status %d pid %d, want %d %d", i, resp.ExitStatus, resp.Pid, tc.status, cr.Pid)
				}
				if !exitedAt.IsZero() && !resp.ExitedAt.AsTime().Equal(exitedAt) {
					t.Fatalf("delete %d: exited at %v, want the recorded %v", i, resp.ExitedAt.AsTime(), exitedAt)
				}
			}
			if initIdent.Alive() {
				t.Fatalf("init %d alive after delete", cr.Pid)
			}
		})
	}
}
