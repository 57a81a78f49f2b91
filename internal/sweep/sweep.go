// Package sweep removes what a test or benchmark run left in a runtime
// root: the processes a container folder's pid records name (only after
// their identity is confirmed, never by name) and every container an OCI
// runtime still knows. It is for harnesses cleaning up after themselves,
// not for the manager, whose delete goes through the shim.
package sweep

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/tether-run/tether/runtime/oci"
	"github.com/tether-run/tether/shim"
)

// KillRecorded sends SIGKILL to the shim, the init and the exec'd
// processes named by the pid records of the container folder dir. A pid
// now used by another process is left alone.
func KillRecorded(dir string) {
	pids := []string{filepath.Join(dir, shim.ShimPidFile), filepath.Join(dir, shim.InitPidFile)}
	execs, _ := filepath.Glob(filepath.Join(dir, shim.ExecDir, "*.pid"))
	for _, p := range append(pids, execs...) {
		if id, err := shim.ReadPid(filepath.Dir(p), filepath.Base(p)); err == nil {
			id.Signal(syscall.SIGKILL)
		}
	}
}

// DeleteAll force-deletes every container rt knows in its root, and
// returns the first error met (listing or deleting); it goes on past
// errors.
func DeleteAll(ctx context.Context, rt *oci.Runtime) error {
	list, err := rt.List(ctx)
	for _, st := range list {
		if derr := rt.Delete(ctx, st.ID, &oci.DeleteOpts{Force: true}); derr != nil && err == nil {
			err = derr
		}
	}
	return err
}
