package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/tether-run/tether/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Two kinds of write. Durable (writeDurable, writeExit): temp file in the
// same folder, fsync, rename, folder fsync; for what must outlive a crash
// of the machine: the container record and exit records. Volatile
// (writeVolatile): temp file and rename, no fsync; for pid records, whose
// identity means something only during the boot it was taken in (after a
// crash the boot id says so), so syncing them would only slow every create
// and exec. Both are atomic for readers: all of it or none.

// writeDurable writes v as JSON to dir/name durably, mode 0600.
func writeDurable(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o600)
}

// writeVolatile replaces dir/name with v as JSON through a temporary file
// and a rename, without fsync.
func writeVolatile(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// reserveSize is the room set aside; an exit record is a few hundred bytes.
const reserveSize = 4096

// errTooLarge: a record does not fit the reserve.
var errTooLarge = errors.New("record larger than its reserve")

// reserveExit sets aside reserveSize allocated bytes for the exit record
// dir/name, so it can still be written once the filesystem is full (of
// the container's own log, most likely).
func reserveExit(dir, name string) error {
	f, err := os.OpenFile(filepath.Join(dir, name+reserveSuffix),
		os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("reserve room for %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, reserveSize); err == nil {
		return nil
	}
	if _, err = f.Write(make([]byte, reserveSize)); err != nil { // no fallocate on this filesystem
		return fmt.Errorf("reserve room for %s: %w", name, err)
	}
	return nil
}

// writeExit writes an exit record durably. With room reserved by
// reserveExit, the record is written into that already allocated file,
// which is then renamed into place, so it needs no new space; otherwise,
// or if that fails, it is written like any record (after the reserve is
// removed, which frees its room).
func writeExit(dir, name string, rec *ExitRecord) error {
	res := filepath.Join(dir, name+reserveSuffix)
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	b = append(b, '\n')
	if err := writeReserved(res, filepath.Join(dir, name), b); err == nil {
		return atomicfile.SyncDir(dir)
	}
	os.Remove(res)
	return writeDurable(dir, name, rec)
}

// writeReserved puts b at the start of the reserve file res, cuts the file
// to len(b), syncs it and renames it to path.
func writeReserved(res, path string, b []byte) error {
	if len(b) > reserveSize {
		return errTooLarge
	}
	f, err := os.OpenFile(res, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(res, path)
}
