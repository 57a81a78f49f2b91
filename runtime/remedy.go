package runtime

import "errors"

// Remedy is what a client can do about a refused operation or about a
// container whose state is unknown. The library's messages say what is
// wrong and name no command: a front end turns the Remedy into its own
// words (the tether CLI into the command to type).
type Remedy int

const (
	// RemedyNone: nothing to add.
	RemedyNone Remedy = iota
	// RemedyForceDelete: only a forced delete clears the container (it
	// kills an init that still runs first).
	RemedyForceDelete
	// RemedyKillExec: an exec'd process runs on without its shim; it can
	// be signalled through KillExec.
	RemedyKillExec
	// RemedyOtherID: the ID is taken; pick another, or delete the
	// container that has it.
	RemedyOtherID
	// RemedyListIDs: no container has the ID; the root's IDs are listed
	// by Manager.List.
	RemedyListIDs
	// RemedyTerminalBundle: the bundle's process.terminal disagrees with
	// CreateOpts.Terminal; write the bundle for the terminal asked for (or
	// ask for the bundle's).
	RemedyTerminalBundle
	// RemedyOtherRoot: the root cannot be made; use a writable folder
	// (Opts.Root).
	RemedyOtherRoot
	// RemedyOtherRuntime: the OCI runtime is not found; install it or
	// name another (Opts.Runtime).
	RemedyOtherRuntime
	// RemedyRuntimeDir: a non-root caller has no default root; set
	// XDG_RUNTIME_DIR (a folder of its own, mode 0700) or name a root
	// (Opts.Root).
	RemedyRuntimeDir
)

// RemedyError is an error together with what can be done about it. Its
// text is Err's; Remedy, ID and Exec are data for a front end to phrase.
type RemedyError struct {
	Remedy Remedy
	ID     string // the container ("" when the remedy is not about one)
	Exec   string // the exec'd process, for RemedyKillExec
	// Terminal is CreateOpts.Terminal, for RemedyTerminalBundle.
	Terminal bool
	Err      error
}

func (e *RemedyError) Error() string { return e.Err.Error() }

// Unwrap returns Err, so errors.Is finds the sentinel it carries.
func (e *RemedyError) Unwrap() error { return e.Err }

// RemedyOf returns the RemedyError in err's chain, or nil.
func RemedyOf(err error) *RemedyError {
	var re *RemedyError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// withRemedy attaches remedy r about container id to err (nil stays nil).
func withRemedy(r Remedy, id string, err error) error {
	if err == nil {
		return nil
	}
	return &RemedyError{Remedy: r, ID: id, Err: err}
}
