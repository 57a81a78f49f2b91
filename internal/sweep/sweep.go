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

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/store"
)

// KillRecorded sends SIGKILL to the shim, the init and the exec'd
// processes named by the pid records of the container folder dir. A pid
// now used by another process is left alone.
func KillRecorded(dir string) {
	st := store.At(filepath.Dir(dir), filepath.Base(dir))
	var ids []proc.Identity
	if id, err := st.ReadShimPid(); err == nil {
		ids = append(ids, id)
	}
	if id, err := st.Init().ReadPid(); err == nil {
		ids = append(ids, id)
	}
	names, _ := st.Execs()
	for _, n := range names {
		if id, err := st.Exec(n).ReadPid(); err == nil {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		id.Signal(syscall.SIGKILL)
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
