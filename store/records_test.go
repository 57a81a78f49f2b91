package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/ids"
	"golang.org/x/sys/unix"
)

// FuzzDecodeRecord feeds arbitrary bytes to the parsers of the container
// record, the pid records and the exit records, which a manager runs on
// whatever it finds in the root after a crash. Each must return a value or
// an error wrapping ErrCorrupt or ErrVersion, never panic, and what it
// accepts must satisfy its checks and survive a round trip.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"id":"c1","bundle":"/b","runtime":"/usr/sbin/runc","runtime_root":"/run/tether/.oci/runc","created_at":"2024-01-01T00:00:00Z","boot_id":"x"}`,
		`{"version":1,"id":"../etc","bundle":"/b","runtime":"runc"}`,
		`{"version":1,"id":"c1","bundle":"b","runtime":"runc"}`,
		`{"version":1,"id":"c1","bundle":"/b","runtime":"runc","log_max_size":-1}`,
		`{"version":1,"pid":42,"start_time":123,"boot_id":"b"}`,
		`{"version":1,"pid":-1}`,
		`{"version":1,"pid":99999999999}`,
		`{"version":1,"pid":7,"status":137,"exited_at":"2024-01-01T00:00:00.5Z","reason":"r"}`,
		`{"version":1,"pid":7,"status":256}`,
		`{"version":2,"pid":7}`,
		`{"version":1,"version":2}`,
		`{"version":"1"}`,
		`{"version":1,"exited_at":"not a time"}`,
		`null`,
		`{"version":1`,
		``,
		"{\"version\":1,\"pid\":1}\n\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkErr := func(what string, err error) {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("%s: error %v wraps neither ErrCorrupt nor ErrVersion", what, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%s: error is not one line: %q", what, err)
			}
		}
		if r, err := ParseRecord(b); err != nil {
			checkErr("record", err)
		} else {
			if ids.ValidID(r.ID) != nil || !filepath.IsAbs(r.Bundle) || r.Runtime == "" || r.LogMaxSize < 0 {
				t.Fatalf("accepted a bad record %+v", r)
			}
			again, err := ParseRecord(mustJSON(t, r))
			if err != nil || !reflect.DeepEqual(normRecord(r), normRecord(again)) {
				t.Fatalf("record round trip: %+v -> %+v, %v", r, again, err)
			}
		}
		if id, err := ParsePid(shimPidFile, b); err != nil {
			checkErr("pid", err)
		} else {
			if id.Pid <= 0 || id.Pid > maxPid {
				t.Fatalf("accepted pid %d", id.Pid)
			}
			again, err := ParsePid(shimPidFile, mustJSON(t, PidRecord{Version: Version, Identity: id}))
			if err != nil || again != id {
				t.Fatalf("pid round trip: %+v -> %+v, %v", id, again, err)
			}
		}
		if e, err := ParseExit(exitFile, b); err != nil {
			checkErr("exit", err)
		} else {
			if e.Status < 0 || e.Status > 255 || e.Pid < 0 {
				t.Fatalf("accepted exit %+v", e)
			}
			again, err := ParseExit(exitFile, mustJSON(t, e))
			if err != nil || again.Status != e.Status || again.Pid != e.Pid || !again.ExitedAt.Equal(e.ExitedAt) || again.Reason != e.Reason {
				t.Fatalf("exit round trip: %+v -> %+v, %v", e, again, err)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normRecord compares records with times by instant, not representation.
func normRecord(r *Record) Record {
	c := *r
	c.CreatedAt = c.CreatedAt.UTC()
	return c
}

func TestParseRecords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func([]byte) error
		in    string
		want  error
	}{
		{"record", recordParser, `{"version":1,"id":"c1","bundle":"/b","runtime":"runc"}`, nil},
		{"record with path id", recordParser, `{"version":1,"id":"../c1","bundle":"/b","runtime":"runc"}`, ErrCorrupt},
		{"record with relative bundle", recordParser, `{"version":1,"id":"c1","bundle":"b","runtime":"runc"}`, ErrCorrupt},
		{"record of version 2", recordParser, `{"version":2,"id":"c1","bundle":"/b","runtime":"runc"}`, ErrVersion},
		{"truncated record", recordParser, `{"version":1,"id":"c1","bun`, ErrCorrupt},
		{"pid", pidParser, `{"version":1,"pid":42,"start_time":1,"boot_id":"b"}`, nil},
		{"pid 0", pidParser, `{"version":1,"pid":0}`, ErrCorrupt},
		{"pid past pid_max", pidParser, `{"version":1,"pid":4194305}`, ErrCorrupt},
		{"exit 137", exitParser, `{"version":1,"pid":42,"status":137}`, nil},
		{"exit status 256", exitParser, `{"version":1,"pid":42,"status":256}`, ErrCorrupt},
		{"exit status -1", exitParser, `{"version":1,"pid":42,"status":-1}`, ErrCorrupt},
		{"exit with string status", exitParser, `{"version":1,"pid":42,"status":"0"}`, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse([]byte(tc.in))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func recordParser(b []byte) error { _, err := ParseRecord(b); return err }
func pidParser(b []byte) error    { _, err := ParsePid(initPidFile, b); return err }
func exitParser(b []byte) error   { _, err := ParseExit(exitFile, b); return err }

// TestWriteExitOnFullDisk fills a small tmpfs and checks that the exit
// record still gets written, into the room reserved for it, while any
// other record cannot be.
func TestWriteExitOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := reserveExit(dir, exitFile); err != nil {
		t.Fatal(err)
	}
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = fill.Write(make([]byte, 4096))
	}
	fill.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	rec := &ExitRecord{Version: Version, Pid: 42, Status: 3, ExitedAt: time.Now().UTC(), Reason: strings.Repeat("r", 300)}
	if err := writeDurable(dir, "other.json", rec); err == nil {
		t.Fatal("the tmpfs is not full: a record could be written without the reserve")
	}
	if err := writeExit(dir, exitFile, rec); err != nil {
		t.Fatalf("exit record not written on a full disk: %v", err)
	}
	got, err := readExit(dir, exitFile)
	if err != nil || got.Status != 3 || got.Pid != 42 || got.Reason != rec.Reason {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, exitFile+reserveSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reserve left behind: %v", err)
	}
}

// TestExitRecordOOMFields: the OOM fields are optional additions to
// version 1: a record without them reads as no OOM kill, one with them
// round-trips, and an encoder leaves them out when there was none (so a
// reader built before them sees exactly the record it knew).
func TestExitRecordOOMFields(t *testing.T) {
	old, err := ParseExit("exit.json", []byte(`{"version":1,"pid":7,"status":137,"exited_at":"2024-01-01T00:00:00Z"}`))
	if err != nil || old.OOMKilled || old.OOMKills != 0 {
		t.Fatalf("record without OOM fields: %+v, %v", old, err)
	}
	rec, err := ParseExit("exit.json", []byte(`{"version":1,"pid":7,"status":137,"exited_at":"2024-01-01T00:00:00Z","oom_killed":true,"oom_kills":2}`))
	if err != nil || !rec.OOMKilled || rec.OOMKills != 2 {
		t.Fatalf("record with OOM fields: %+v, %v", rec, err)
	}
	b, err := json.Marshal(old)
	if err != nil || strings.Contains(string(b), "oom") {
		t.Errorf("record without an OOM kill encodes as %s, want no oom field", b)
	}
}
