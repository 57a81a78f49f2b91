package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

var errENODEV = syscall.ENODEV

// v1Unlimited is the smallest value a v1 page counter limit shows when it
// is not set: PAGE_COUNTER_MAX pages, rounded down to a page, lies between
// it and MaxInt64.
const v1Unlimited = 1 << 62

// readFile reads dir/name; an error wraps ErrNotFound when the group is gone.
func readFile(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", gone(dir, err)
	}
	return string(b), nil
}

// readOptional reads dir/name; ok is false when that file does not exist
// (a feature this kernel lacks) while the group does.
func readOptional(dir, name string) (text string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err == nil {
		return string(b), true, nil
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errENODEV) || errors.Is(err, syscall.EOPNOTSUPP) {
		if _, serr := os.Stat(dir); serr == nil {
			return "", false, nil
		}
	}
	return "", false, gone(dir, err)
}

// readUint reads a file holding one number, or "max" (Unlimited). A v1
// page-counter limit at its maximum also reads as Unlimited.
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	return parseUint(name, s)
}

// readOptionalUint is readUint for a file a kernel may lack; ok is false then.
func readOptionalUint(dir, name string) (v uint64, ok bool, err error) {
	s, ok, err := readOptional(dir, name)
	if !ok || err != nil {
		return 0, ok, err
	}
	v, err = parseUint(name, s)
	return v, err == nil, err
}

func parseUint(name, s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return Unlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// some v1 files print -1 for "no limit"
		if n, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && n < 0 {
			return Unlimited, nil
		}
		return 0, fmt.Errorf("%w: %s: %q is not a number", ErrInvalid, name, s)
	}
	if strings.HasSuffix(name, "limit_in_bytes") && v >= v1Unlimited {
		return Unlimited, nil
	}
	return v, nil
}

// parseKV parses "key value" lines (memory.stat, cpu.stat,
// memory.events, memory.oom_control, cpuacct.stat).
func parseKV(name, s string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: %s: line %q is not \"key value\"", ErrInvalid, name, line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: line %q: %q is not a number", ErrInvalid, name, line, f[1])
		}
		out[f[0]] = v
	}
	return out, nil
}

// readKV reads and parses a key/value file.
func readKV(dir, name string) (map[string]uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	return parseKV(name, s)
}

func splitFields(s string) []string { return strings.Fields(s) }

// parseDevice parses "MAJ:MIN".
func parseDevice(s string) (major, minor uint64, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		if major, err = strconv.ParseUint(a, 10, 64); err == nil {
			minor, err = strconv.ParseUint(b, 10, 64)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%w: device %q is not MAJOR:MINOR", ErrInvalid, s)
	}
	return major, minor, nil
}
