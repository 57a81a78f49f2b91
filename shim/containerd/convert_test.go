package containerd

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/tether-run/tether/shim"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []string
		flags uintptr
		data  string
	}{
		{"overlay data only", []string{"lowerdir=/a", "upperdir=/b", "workdir=/c"}, 0, "lowerdir=/a,upperdir=/b,workdir=/c"},
		{"read-only bind", []string{"rbind", "ro"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, ""},
		{"rw clears ro", []string{"ro", "rw", "nosuid"}, unix.MS_NOSUID, ""},
		{"mixed", []string{"nodev", "index=off"}, unix.MS_NODEV, "index=off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, d := parseMountOptions(tc.opts)
			if f != tc.flags || d != tc.data {
				t.Fatalf("got %#x %q, want %#x %q", f, d, tc.flags, tc.data)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	for in, want := range map[string]tasktypes.Status{
		shim.StatusCreating: tasktypes.Status_CREATED, shim.StatusCreated: tasktypes.Status_CREATED,
		shim.StatusRunning: tasktypes.Status_RUNNING, shim.StatusPaused: tasktypes.Status_PAUSED,
		shim.StatusStopped: tasktypes.Status_STOPPED, "weird": tasktypes.Status_UNKNOWN,
	} {
		if got := statusOf(in); got != want {
			t.Errorf("statusOf(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("exec x: %w", shim.ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", shim.ErrExists), codes.AlreadyExists},
		{fmt.Errorf("x: %w", shim.ErrRunning), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", shim.ErrCommandNotFound), codes.InvalidArgument},
		{errors.New("plain"), codes.Unknown},
		{status.Error(codes.Unimplemented, "kept"), codes.Unimplemented},
	} {
		if got := status.Code(toStatus(tc.err)); got != tc.code {
			t.Errorf("toStatus(%v) = %v, want %v", tc.err, got, tc.code)
		}
	}
}

func TestRuncOptions(t *testing.T) {
	b, _ := proto.Marshal(&options.Options{BinaryName: "crun", Root: "/r"})
	for _, url := range []string{"containerd.runc.v1.Options", "type.googleapis.com/containerd.runc.v1.Options"} {
		o, err := runcOptions(&anypb.Any{TypeUrl: url, Value: b})
		if err != nil || o.BinaryName != "crun" || o.Root != "/r" {
			t.Fatalf("%s: %v %v", url, o, err)
		}
	}
	if o, err := runcOptions(&anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{1, 2}}); err != nil || o.BinaryName != "" {
		t.Fatalf("other options type: %v %v", o, err)
	}
	if _, err := runcOptions(&anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0xff}}); err == nil {
		t.Fatal("garbage runc options accepted")
	}
	if got := runtimeRoot("", "k8s.io"); got != "/run/containerd/runc/k8s.io" {
		t.Fatalf("default runtime root %q", got)
	}
}

func TestLinuxResources(t *testing.T) {
	res, err := linuxResources(&anypb.Any{TypeUrl: linuxResourcesURL,
		Value: []byte(`{"memory":{"limit":33554432},"cpu":{"quota":50000,"period":100000}}`)})
	if err != nil || res.Memory == nil || *res.Memory.Limit != 32<<20 || *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 {
		t.Fatalf("decoded %+v, %v", res, err)
	}
	for name, a := range map[string]*anypb.Any{
		"none":    nil,
		"empty":   {TypeUrl: linuxResourcesURL},
		"windows": {TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/WindowsResources", Value: []byte(`{}`)},
		"bad":     {TypeUrl: linuxResourcesURL, Value: []byte(`{"memory":`)},
	} {
		if _, err := linuxResources(a); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckpointOptions(t *testing.T) {
	b, _ := proto.Marshal(&options.CheckpointOptions{Exit: true, WorkPath: "/w", ImagePath: "/i"})
	o, err := checkpointOptions(&anypb.Any{TypeUrl: "containerd.runc.v1.CheckpointOptions", Value: b})
	if err != nil || !o.Exit || o.WorkPath != "/w" || o.ImagePath != "/i" {
		t.Fatalf("decoded %+v, %v", o, err)
	}
	if o, err := checkpointOptions(nil); err != nil || o.Exit {
		t.Fatalf("no options: %+v, %v (want leave running)", o, err)
	}
	if _, err := checkpointOptions(&anypb.Any{TypeUrl: "containerd.runc.v1.CheckpointOptions", Value: []byte{0xff}}); err == nil {
		t.Fatal("garbage options accepted")
	}
}
