package bundle

import (
	"errors"
	"strings"
)

// Sentinel errors returned (wrapped) by Write, Validate and LoadSpec. Test
// for them with errors.Is; the message of the returned error is a single
// line that names the bundle, the problem and the fix.
var (
	// ErrNoBundle means the folder given is not a bundle at all: it does
	// not exist, is not a directory, or holds no config.json.
	ErrNoBundle = errors.New("not a bundle")
	// ErrBadConfig means config.json exists but cannot be used: it cannot
	// be read or parsed, has no process args, or its root.path is not a
	// directory.
	ErrBadConfig = errors.New("bad bundle config")
	// ErrExists means Write was asked to write into a path that is a file
	// or a folder that is not empty.
	ErrExists = errors.New("bundle folder not empty")
	// ErrNoBusybox means Write found no busybox to copy, or only one that
	// cannot run in a container (dynamically linked, or not an ELF file).
	ErrNoBusybox = errors.New("no usable static busybox")
)

// bundleError is the error type of this package: "bundle DIR: problem".
// It unwraps to its sentinel kind and to its cause, either may be nil.
type bundleError struct {
	dir     string
	problem string
	kind    error
	cause   error
}

// oneLine turns line breaks into spaces so every message stays on one line.
var oneLine = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// newError builds a bundleError; problem is flattened to one line.
func newError(dir string, kind, cause error, problem string) error {
	problem = oneLine.Replace(problem)
	return &bundleError{dir: dir, problem: problem, kind: kind, cause: cause}
}

func (e *bundleError) Error() string {
	if e.dir == "" {
		return "bundle: " + e.problem
	}
	return "bundle " + e.dir + ": " + e.problem
}

// Unwrap lets errors.Is and errors.As see both the sentinel and the cause.
func (e *bundleError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
