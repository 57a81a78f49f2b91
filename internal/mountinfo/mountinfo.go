// Package mountinfo parses /proc/PID/mountinfo (proc(5)): one parser for
// the cgroups package, which finds a process's cgroup folders through it,
// and for the test helpers that look for leaked mounts.
package mountinfo

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mount is one line of a mountinfo file.
type Mount struct {
	Dev    string // major:minor of the mounted filesystem
	Root   string // the mounted folder, relative to its filesystem's root
	Point  string // where it is mounted, in the reading process's view
	FSType string
	Opts   []string // the superblock's options (for cgroup v1: its controllers)
}

// Parse returns the mounts in the text of a mountinfo file, in file
// order. A line reads "ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] -
// FSTYPE SOURCE SUPER"; a line that does not is an error naming it.
func Parse(text string) ([]Mount, error) { return ParseTypes(text) }

// ParseTypes is Parse keeping only the mounts of the filesystem types
// given (all of them when none is). The other lines are skipped before
// they are split, which costs nothing: a host running many containers has
// hundreds of mounts. A malformed line is still an error.
func ParseTypes(text string, fsTypes ...string) ([]Mount, error) {
	var out []Mount
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		if _, after, ok := strings.Cut(line, " - "); ok && len(fsTypes) > 0 {
			if fs, _, _ := strings.Cut(after, " "); !slices.Contains(fsTypes, fs) {
				continue
			}
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("malformed mountinfo line %q", line)
		}
		m := Mount{Dev: f[2], Root: Unescape(f[3]), Point: Unescape(f[4]), FSType: f[sep+1]}
		if sep+3 < len(f) {
			m.Opts = strings.Split(f[sep+3], ",")
		}
		out = append(out, m)
	}
	return out, nil
}

// Read parses the mountinfo file at path.
func Read(path string) ([]Mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ms, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ms, nil
}

// Unescape undoes the octal escapes (\040 for a space, \011, \012, \134)
// the kernel writes in mountinfo paths.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
