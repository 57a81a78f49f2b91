package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The messages say what is wrong and name no command of a front end: the
// tether CLI adds how to write a bundle (with 'tether bundle') from the
// sentinel.

// Validate checks the bundle folder dir before it is handed to an OCI
// runtime: dir is an existing directory holding a config.json that parses
// into specs.Spec, whose process has non-empty args and whose root.path
// (relative to dir unless absolute) is a directory. It returns the parsed
// spec, or nil and an error whose message is one line naming the bundle,
// the problem and the fix. The error wraps ErrNoBundle when dir is missing,
// not a directory or has no config.json, and ErrBadConfig for everything
// wrong inside config.json; test with errors.Is.
func Validate(dir string) (*specs.Spec, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, newError(dir, ErrNoBundle, err,
			"no such folder")
	case err != nil:
		return nil, newError(dir, ErrNoBundle, err, err.Error())
	case !fi.IsDir():
		return nil, newError(dir, ErrNoBundle, nil,
			"is a file, not a folder: give the bundle folder, the one holding config.json")
	}
	spec, err := LoadSpec(dir)
	if err != nil {
		return nil, err
	}
	if err := checkProcess(dir, spec); err != nil {
		return nil, err
	}
	if err := checkRoot(dir, spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// LoadSpec reads and parses dir/config.json. It checks only that the file
// is there and is JSON matching specs.Spec, not that the spec is usable:
// Validate does that. A missing config.json wraps ErrNoBundle; an
// unreadable or malformed one wraps ErrBadConfig, and the message gives
// the line and column of a JSON error.
func LoadSpec(dir string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newError(dir, ErrNoBundle, err, "no config.json")
	}
	if err != nil {
		return nil, newError(dir, ErrBadConfig, err, "cannot read config.json: "+err.Error())
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, newError(dir, ErrBadConfig, err, describeJSONError(data, err)+": fix it")
	}
	return &spec, nil
}

// describeJSONError says where in data the JSON error err happened.
func describeJSONError(data []byte, err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	offset := int64(-1)
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 {
		return "config.json: " + err.Error()
	}
	line, col := lineCol(data, offset)
	return fmt.Sprintf("config.json line %d, column %d: %v", line, col, err)
}

// lineCol turns the offset of a JSON error, the number of bytes read
// when it was found, into the 1-based line and column of the last of
// those bytes.
func lineCol(data []byte, offset int64) (line, col int) {
	i := int(min(max(offset-1, 0), int64(len(data))))
	line = 1 + bytes.Count(data[:i], []byte{'\n'})
	col = i - bytes.LastIndexByte(data[:i], '\n')
	return line, col
}

// checkProcess requires a process with a non-empty command.
func checkProcess(dir string, spec *specs.Spec) error {
	if spec.Process == nil {
		return newError(dir, ErrBadConfig, nil,
			`config.json has no "process": add one with "args"`)
	}
	if len(spec.Process.Args) == 0 || spec.Process.Args[0] == "" {
		return newError(dir, ErrBadConfig, nil,
			`config.json has an empty process.args: set the command to run, e.g. "args": ["sh"]`)
	}
	return nil
}

// checkRoot requires root.path to name a directory.
func checkRoot(dir string, spec *specs.Spec) error {
	if spec.Root == nil || spec.Root.Path == "" {
		return newError(dir, ErrBadConfig, nil,
			`config.json has no root.path: set "root": {"path": "rootfs"} and put the root filesystem there`)
	}
	root := spec.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(dir, root)
	}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return newError(dir, ErrBadConfig, err,
			fmt.Sprintf("root.path %q (%s) does not exist: create the root filesystem there or fix root.path in config.json",
				spec.Root.Path, root))
	case err != nil:
		return newError(dir, ErrBadConfig, err, fmt.Sprintf("root.path %q: %v", spec.Root.Path, err))
	case !fi.IsDir():
		return newError(dir, ErrBadConfig, nil,
			fmt.Sprintf("root.path %q (%s) is not a folder: make it the root filesystem folder or fix root.path in config.json",
				spec.Root.Path, root))
	}
	return nil
}
