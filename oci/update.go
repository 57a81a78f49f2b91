package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update changes the resource limits of container id (`update
// --resources FILE`, which runc and crun both read): only the fields set
// in res change. The JSON is written to a temporary file in LogDir that
// is removed afterwards. A limit the kernel or the runtime refuses (say a
// memory limit below what the container already uses) comes back as a
// *RuntimeError with the runtime's own message, and the runtime changes
// nothing it could not change.
// Errors: ErrInvalidID, *RuntimeError (ErrNotFound, ErrNotRunning),
// ErrBinaryNotFound.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	if err := r.idError("update", id); err != nil {
		return err
	}
	prefix := opPrefix(r.displayName(), "update", id)
	if res == nil {
		return fmt.Errorf("%s: no resources given", prefix)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	f, err := os.CreateTemp(r.logDir(), "oci-resources-*.json")
	if err != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("%s: write resources: %w", prefix, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: write resources: %w", prefix, err)
	}
	_, err = r.run(ctx, call{op: "update", id: id, args: []string{"update", "--resources", f.Name(), id}})
	return err
}
