package crilog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Files returns the existing files of the log at path, oldest first:
// path.N ... path.1, path. Directories of those names are ignored, and gaps
// in the numbering (left by a rotation in progress) are skipped. A missing
// log, or a missing directory, yields an empty list and no error.
func Files(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var nums []int
	current := false
	for _, e := range ents {
		if e.IsDir() {
			continue
		} else if e.Name() == base {
			current = true
		} else if n, ok := rotatedNumber(e.Name(), base); ok {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	slices.Reverse(nums)
	if current {
		nums = append(nums, 0)
	}
	names := make([]string, len(nums))
	for i, n := range nums {
		names[i] = rotatedName(path, n)
	}
	return names, nil
}

// rotatedNumber parses name as base.N with N >= 1 written canonically.
func rotatedNumber(name, base string) (int, bool) {
	suffix, ok := strings.CutPrefix(name, base+".")
	if !ok || suffix == "" || len(suffix) > 9 || suffix[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(suffix)
	return n, err == nil && n > 0 && strconv.Itoa(n) == suffix
}

// openSnapshot opens the files of the log, oldest first. It opens the
// newest first and skips a file it already holds, so that a rotation
// meanwhile neither loses nor repeats a file.
func openSnapshot(path string) ([]*os.File, error) {
	names, err := Files(path)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	var infos []os.FileInfo
	for i := len(names) - 1; i >= 0; i-- {
		f, fi, err := openStat(names[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			closeFiles(files)
			return nil, err
		}
		if slices.ContainsFunc(infos, func(o os.FileInfo) bool { return os.SameFile(o, fi) }) {
			f.Close()
			continue
		}
		files, infos = append(files, f), append(infos, fi)
	}
	slices.Reverse(files)
	return files, nil
}

// openStat opens name for reading and returns its FileInfo.
func openStat(name string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// openNewer opens the log file that follows cur: the one with the next
// lower number, or the oldest file if cur has been rotated away entirely.
// It returns nil, nil when that cannot be decided yet (a rotation is in
// progress); the caller tries again later.
func openNewer(path string, cur os.FileInfo) (*os.File, error) {
	next, nextInfo, err := findNewer(path, cur)
	if err != nil || next == "" {
		return nil, err
	}
	f, fi, err := openStat(next)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !os.SameFile(fi, nextInfo) {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// findNewer names the file that follows cur among path's files. A writer
// may rotate while the names are looked at (each rotation renames every
// file once), so the names are looked at until two looks in a row agree:
// one look alone can see a file at its old name and the next at its new
// one, and skip a file between.
func findNewer(path string, cur os.FileInfo) (string, os.FileInfo, error) {
	var prev []os.FileInfo
	for try := 0; ; try++ {
		names, err := Files(path)
		if err != nil {
			return "", nil, err
		}
		infos := make([]os.FileInfo, len(names))
		for i, n := range names {
			infos[i], _ = os.Stat(n)
		}
		if try >= 10 || sameInfos(prev, infos) {
			return pickNewer(names, infos, cur)
		}
		prev = infos
	}
}

// sameInfos reports whether two looks saw the same files at the same names.
func sameInfos(a, b []os.FileInfo) bool {
	if a == nil || len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || a[i] != nil && !os.SameFile(a[i], b[i]) {
			return false
		}
	}
	return true
}

// pickNewer returns the name after cur, newest last in names.
func pickNewer(names []string, infos []os.FileInfo, cur os.FileInfo) (string, os.FileInfo, error) {
	var next string
	var nextInfo os.FileInfo
	for i := len(names) - 1; i >= 0; i-- {
		if infos[i] == nil {
			continue
		}
		if os.SameFile(infos[i], cur) {
			break
		}
		next, nextInfo = names[i], infos[i]
	}
	return next, nextInfo, nil
}
