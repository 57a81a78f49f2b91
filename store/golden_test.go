package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoldenRecords decodes the records of every shipped format version,
// kept under testdata/vN, forever: a reader must accept its own version
// and every older one. A new version adds its folder; no folder is ever
// removed or edited.
func TestGoldenRecords(t *testing.T) {
	read := func(t *testing.T, v, name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", v, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, v := range []string{"v1"} {
		t.Run(v, func(t *testing.T) {
			rec, err := ParseRecord(read(t, v, recordFile))
			if err != nil || rec.ID != "web" || rec.Bundle != "/srv/bundles/web" || rec.Runtime != "/usr/sbin/runc" ||
				rec.RuntimeRoot != "/run/tether/.oci/runc" || len(rec.RuntimeArgs) != 1 || !rec.Terminal || !rec.Stdin ||
				rec.LogMaxSize != 10<<20 || rec.LogMaxFiles != 3 || rec.RuntimeTimeout() != 90*time.Second ||
				rec.CreatedAt.IsZero() || rec.BootID == "" {
				t.Errorf("container record: %+v, %v", rec, err)
			}
			for _, name := range []string{shimPidFile, initPidFile} {
				id, err := ParsePid(name, read(t, v, name))
				if err != nil || id.Pid <= 0 || id.StartTime == 0 || id.BootID == "" {
					t.Errorf("%s: %+v, %v", name, id, err)
				}
			}
			exit, err := ParseExit(exitFile, read(t, v, exitFile))
			if err != nil || exit.Pid != 4300 || exit.Status != 137 || exit.Reason == "" || exit.ExitedAt.IsZero() {
				t.Errorf("exit record: %+v, %v", exit, err)
			}
			// oom_killed and oom_kills are optional fields of version 1:
			// readers of 3911370 and before ignore them.
			oom, err := ParseExit(exitFile, read(t, v, "exit-oom.json"))
			if err != nil || oom.Status != 137 || !oom.OOMKilled || oom.OOMKills != 2 {
				t.Errorf("exit record with an OOM kill: %+v, %v", oom, err)
			}
			// auto_remove is an optional field of version 1 too: readers
			// that predate it ignore it, and the container stays.
			rm, err := ParseRecord(read(t, v, "container-autoremove.json"))
			if err != nil || rm.ID != "job" || !rm.AutoRemove || rec.AutoRemove {
				t.Errorf("auto-remove record: %+v, %v (plain record: %v)", rm, err, rec.AutoRemove)
			}
		})
	}
}

// TestNewerVersionRefused: a record of a version this build does not know
// yet is refused with ErrVersion, saying a newer tether wrote it.
func TestNewerVersionRefused(t *testing.T) {
	_, err := ParseExit(exitFile, []byte(`{"version":2,"pid":1,"status":0}`))
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "newer tether") {
		t.Fatalf("got %v", err)
	}
}
