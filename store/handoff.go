package store

import "path/filepath"

// handoffFile is written by a shim upgrading itself in place for its new
// binary (package shim owns its format and version); it exists only for
// the moment of the upgrade.
const handoffFile = "handoff.json"

// HandoffPath is the handoff file of an in-place shim upgrade.
func (f *Folder) HandoffPath() string { return filepath.Join(f.dir, handoffFile) }
