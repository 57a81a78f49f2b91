package ctrd

// Resources through the runtime v2 contract: Update with the JSON
// LinuxResources containerd's client sends, TaskOOM for an OOM-killed
// init, and Checkpoint's answer on this host.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/internal/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// resourcesAny wraps res as containerd's client does: JSON under the type
// URL it registers for specs.LinuxResources.
func resourcesAny(t *testing.T, res *specs.LinuxResources) *anypb.Any {
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: b}
}

// statsMemLimit decodes the memory limit of a Stats answer (v1 or v2).
func statsMemLimit(t *testing.T, a *anypb.Any) uint64 {
	t.Helper()
	switch {
	case strings.HasSuffix(a.TypeUrl, "io.containerd.cgroups.v1.Metrics"):
		m := &v1.Metrics{}
		if err := proto.Unmarshal(a.Value, m); err != nil {
			t.Fatal(err)
		}
		return m.GetMemory().GetUsage().GetLimit()
	case strings.HasSuffix(a.TypeUrl, "io.containerd.cgroups.v2.Metrics"):
		m := &v2.Metrics{}
		if err := proto.Unmarshal(a.Value, m); err != nil {
			t.Fatal(err)
		}
		return m.GetMemory().GetUsageLimit()
	}
	t.Fatalf("stats of type %q", a.TypeUrl)
	return 0
}

func TestContainerdUpdate(t *testing.T) {
	e := newProtoEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := uniq("u")
	b := e.bundle(id, "sleep", "1000")
	task, _ := e.start(b, id)
	cr, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	const limit = 48 << 20
	if _, err := task.Update(ctx, &taskapi.UpdateTaskRequest{ID: id,
		Resources: resourcesAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(limit))}})}); err != nil {
		t.Fatalf("update: %v", err)
	}
	st, err := task.Stats(ctx, &taskapi.StatsRequest{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := statsMemLimit(t, st.Stats); got != limit {
		t.Fatalf("Stats memory limit %d after update, want %d", got, limit)
	}
	cg, err := cgroups.Load(int(cr.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := cg.Stats(); err != nil || cs.Memory == nil || cs.Memory.Limit != limit {
		t.Fatalf("cgroup %s memory limit: %+v %v, want %d", cg, cs.Memory, err, limit)
	}
	// Bad input: one clear refusal, the limit unchanged.
	bad := []*anypb.Any{nil, {TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/WindowsResources", Value: []byte("{}")},
		{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: []byte("{not json")}}
	for _, a := range bad {
		_, err := task.Update(ctx, &taskapi.UpdateTaskRequest{ID: id, Resources: a})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("update with %v: %v, want InvalidArgument", a, err)
		}
	}
	// A value runc refuses comes back as an error and changes nothing.
	if _, err := task.Update(ctx, &taskapi.UpdateTaskRequest{ID: id,
		Resources: resourcesAny(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(0)), Cpus: "999999"}})}); err == nil {
		t.Error("update to cpuset 999999 succeeded")
	}
	if cs, err := cg.Stats(); err != nil || cs.Memory.Limit != limit {
		t.Fatalf("memory limit after refused updates: %+v %v, want %d", cs.Memory, err, limit)
	}
	if _, err := task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	if w, err := task.Wait(ctx, &taskapi.WaitRequest{ID: id}); err != nil || w.ExitStatus != 137 {
		t.Fatalf("wait: %v %v", w, err)
	}
	if _, err := task.Update(ctx, &taskapi.UpdateTaskRequest{ID: id,
		Resources: resourcesAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(limit))}})}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("update of an exited task: %v, want FailedPrecondition", err)
	}
	if _, err := task.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	task.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id})
}

func ptr[T any](v T) *T { return &v }

// TestContainerdOOM: init allocates past its 16 MiB limit; containerd
// gets /tasks/oom before /tasks/exit and ctr sees 137.
func TestContainerdOOM(t *testing.T) {
	c := startContainerd(t, false, "")
	id := uniq("oom")
	stop := c.events(t, id, "/tasks/delete")
	_, code := c.ctrCode("run", "--rm", "--runtime", tetherRuntime, "--memory-limit", "16777216",
		"--rootfs", c.rootfs(), id, "/bin/sh", "-c", "x=0123456789; while :; do x=$x$x; done")
	got := stop()
	if code != 137 {
		t.Fatalf("ctr run of an allocating task under 16 MiB: exit %d, want 137", code)
	}
	want := []string{"/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit", "/tasks/delete"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestContainerdCheckpoint: a checkpoint goes through the core to CRIU.
// On this host's known incompatibility (criuKnownBroken) the dump fails:
// the error must come back through containerd's API and the task go on
// running; elsewhere the images must be written.
func TestContainerdCheckpoint(t *testing.T) {
	e := newProtoEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := uniq("k")
	b := e.bundle(id, "sleep", "1000")
	task, _ := e.start(b, id)
	if _, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{ID: id, Path: "relative"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("checkpoint to a relative path: %v, want InvalidArgument", err)
	}
	img := filepath.Join(e.dir, "img")
	o, _ := proto.Marshal(&options.CheckpointOptions{})
	_, err := task.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{ID: id, Path: img,
		Options: &anypb.Any{TypeUrl: string(proto.MessageName(&options.CheckpointOptions{})), Value: o}})
	if reason := testutil.CRIUKnownBroken(err); reason != "" {
		t.Logf("%s: checked the refusal through the task API: %v", reason, err)
	} else if err != nil {
		t.Fatalf("checkpoint: %v", err)
	} else if _, err := os.Stat(filepath.Join(img, "inventory.img")); err != nil {
		t.Fatalf("no CRIU images: %v", err)
	}
	// Left running either way (no Exit option).
	if st, err := task.State(ctx, &taskapi.StateRequest{ID: id}); err != nil || st.Status.String() != "RUNNING" {
		t.Fatalf("state after checkpoint: %v %v", st, err)
	}
	task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)})
	task.Wait(ctx, &taskapi.WaitRequest{ID: id})
	if _, err := task.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	task.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id})
}
