package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/restore"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Exit statuses Cleanup reports when the process's own status was not
// recorded.
const (
	// StatusKilled: init still ran when containerd gave up on its shim,
	// and Cleanup killed it (128+SIGKILL: that is how it ended).
	StatusKilled = 128 + int(syscall.SIGKILL)
	// StatusUnknown: init had ended and nobody recorded how (never 0).
	StatusUnknown = 255
)

// Reasons written into the exit record by Cleanup.
const (
	ReasonKilledByDelete = "killed by containerd-shim-tether-v1 delete: containerd had lost its shim"
	ReasonNoRecord       = "the shim died before it recorded the exit; the exit status is unknown"
)

// Cleanup is the binary's `delete`, which containerd runs when it can no
// longer reach the task's shim. It stops a shim that still runs, kills
// init if it lives on (by its recorded identity), deletes the runtime's
// container and unmounts the rootfs, and returns the task's exit: the
// status and time the core recorded when init had exited, else the
// truth about what Cleanup found. It is idempotent: the exit it reports
// is written down, and a second call reports it again. It does not
// remove the bundle: containerd does.
func Cleanup(ctx context.Context, bundle, id string) (*taskapi.DeleteResponse, error) {
	f, err := store.Open(stateRoot(bundle), id)
	if err != nil {
		return nil, err
	}
	rec, err := f.ReadRecord()
	if errors.Is(err, os.ErrNotExist) {
		// Create never got as far as the core, or Delete already ran.
		return &taskapi.DeleteResponse{ExitStatus: StatusUnknown, ExitedAt: timestamppb.Now()}, unmountRootfs(bundle)
	}
	if err != nil {
		return nil, fmt.Errorf("task %s: %w: remove %s by hand", id, err, f.Dir())
	}
	stopShim(f, id)
	exit, err := finalExit(f, rec)
	if err != nil {
		return nil, err
	}
	rt := &oci.Runtime{Command: rec.Runtime, Root: rec.RuntimeRoot, Timeout: 3 * time.Second}
	var errs []error
	if err := rt.Delete(ctx, id, &oci.DeleteOpts{Force: true}); err != nil && !errors.Is(err, oci.ErrNotFound) {
		errs = append(errs, err)
	}
	errs = append(errs, unmountRootfs(bundle))
	resp := &taskapi.DeleteResponse{Pid: uint32(exit.Pid), ExitStatus: uint32(exit.Status), ExitedAt: timestamppb.New(exit.ExitedAt)}
	return resp, errors.Join(errs...)
}

// stopShim kills the task's serving shim if it still runs (containerd
// has given up on it: hung, or its socket gone), after checking through
// a pidfd that the recorded pid is that shim.
func stopShim(f *store.Folder, id string) {
	ident, err := f.ReadShimPid()
	if err != nil || ident.Pid == os.Getpid() {
		return
	}
	fd, err := ident.Open()
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if !isServingShim(ident.Pid, id) {
		return
	}
	if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
		proc.WaitFd(fd, 2*time.Second)
	}
}

// isServingShim checks pid's command line is "... -id ID ... serve".
func isServingShim(pid int, id string) bool {
	b, err := proc.Cmdline(pid)
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	if len(args) < 2 || string(args[len(args)-1]) != "serve" {
		return false
	}
	for i := 0; i+1 < len(args); i++ {
		if string(args[i]) == "-id" && string(args[i+1]) == id {
			return true
		}
	}
	return false
}

// finalExit returns init's exit record, writing one when there is none:
// init still alive is killed (StatusKilled), init gone is StatusUnknown.
func finalExit(f *store.Folder, rec *store.Record) (*store.ExitRecord, error) {
	initProc := f.Init()
	if e, err := initProc.ReadExit(); err == nil {
		return e, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("exit record: %w", err)
	}
	e := &store.ExitRecord{Version: store.Version, Status: StatusUnknown, Reason: ReasonNoRecord}
	if ident, err := initProc.ReadPid(); err == nil {
		e.Pid = ident.Pid
		if fd, err := restore.OpenMember(rec, ident); err == nil {
			if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil && proc.WaitFd(fd, 2*time.Second) {
				e.Status, e.Reason = StatusKilled, ReasonKilledByDelete
			}
			unix.Close(fd)
		}
	}
	e.ExitedAt = time.Now().UTC()
	if err := initProc.WriteExit(e); err != nil {
		return nil, fmt.Errorf("write exit record: %w", err)
	}
	return e, nil
}
