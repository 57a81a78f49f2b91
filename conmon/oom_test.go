package conmon

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteOOMFiles: the OOM marks podman reads are the empty files
// <bundle>/oom (podman 4) and <persist-dir>/oom (podman 5); writing them
// twice (the live event, then the exit) is harmless; with neither folder
// set nothing is written.
func TestWriteOOMFiles(t *testing.T) {
	bundle, persist := t.TempDir(), t.TempDir()
	o := &Options{Bundle: bundle, PersistDir: persist}
	for range 2 {
		if err := writeOOMFiles(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{bundle, persist} {
		fi, err := os.Stat(filepath.Join(dir, "oom"))
		if err != nil || fi.Size() != 0 || !fi.Mode().IsRegular() {
			t.Errorf("%s/oom: %v, %v; want an empty file", dir, fi, err)
		}
	}
	if err := writeOOMFiles(&Options{}); err != nil {
		t.Errorf("no folders: %v", err)
	}
	if err := writeOOMFiles(&Options{Bundle: filepath.Join(bundle, "missing")}); err == nil {
		t.Error("a missing bundle folder gave no error")
	}
}
