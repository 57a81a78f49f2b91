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
	names, err := Files(path)
	if err != nil {
		return nil, err
	}
	var next string
	var nextInfo os.FileInfo
	for i := len(names) - 1; i >= 0; i-- {
		fi, err := os.Stat(names[i])
		if err != nil {
			continue
		}
		if os.SameFile(fi, cur) {
			break
		}
		next, nextInfo = names[i], fi
	}
	if next == "" {
		return nil, nil
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
