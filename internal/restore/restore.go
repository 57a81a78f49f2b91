// Package restore holds the live-restore verdict: given what was found in
// a container's folder and in /proc, is the container live (a shim serves
// it), stopped (an exit record says how it ended), an orphan (its shim
// died, its init runs on), lost (shim and init gone without a record),
// being created, or corrupt? One function, Classify, decides for the
// container and one, ClassifyExec, for an exec'd process; both are pure and
// table-tested. Gather and GatherExec collect the facts they need.
//
// The manager (package runtime) and an adopting shim (package shim) both
// decide through it, so they can never disagree on what a set of records
// means or on the reason they give.
//
// It also owns the identity checks the verdict rests on: VerifyShim (is
// this pid the shim of that container?), VerifyMember (is this pid inside
// that container?) and OpenMember (a pidfd, checked).
package restore

import (
	"errors"
	"fmt"
	"os"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/store"
)

// Verdict is what a container (or an exec'd process) is, from its records.
type Verdict int

// The verdicts. The zero Verdict is not one of them.
const (
	// Live: a live shim serves the container; ask it.
	Live Verdict = iota + 1
	// Stopped: no live shim, and an exit record says how it ended.
	Stopped
	// Orphan: the shim is gone without an exit record and init (or the
	// exec'd process) still runs inside the container: adopt it.
	Orphan
	// Lost: shim and process are gone and nobody recorded the exit: the
	// status is unknown (store.UnknownStatus), Result.Reason says why.
	Lost
	// Creating: the container's create has not completed: another manager
	// holds the folder's lock (Result.Locked), or the create was cut off.
	Creating
	// Corrupt: a record cannot be read, or is of a newer version
	// (errors.Is(Result.Err, errdefs.ErrVersion)): leave the container to
	// a delete --force (never for a newer version: see the README).
	Corrupt
	// Absent: an exec'd process with neither pid nor exit record.
	Absent
)

var verdictNames = [...]string{"", "live", "stopped", "orphan", "lost", "creating", "corrupt", "absent"}

func (v Verdict) String() string {
	if v < 0 || int(v) >= len(verdictNames) {
		return fmt.Sprintf("verdict(%d)", int(v))
	}
	return verdictNames[v]
}

// Reasons given with an unknown exit status. They are written in exit
// records and shown in State, so they are part of the contract.
const (
	ReasonShimDied  = "shim died before it recorded the exit; the exit status is unknown"
	ReasonRebooted  = "the host rebooted since the container ran; its exit status is unknown"
	ReasonCreating  = "being created by another manager (its folder is locked)"
	ReasonNoCreate  = "create did not complete"
	ReasonNoShimRan = "exited while no shim ran; the exit status is unknown"
)

// Facts is what was found about a container. Errors are those of reading
// the record named, nil when it was read.
type Facts struct {
	// RecordErr: reading container.json.
	RecordErr error
	// ShimErr: nil when shim.pid names a live shim of this container;
	// satisfying os.ErrNotExist or proc.ErrGone when no shim runs; any
	// other error when shim.pid cannot be read.
	ShimErr error
	// Shim is shim.pid's identity when it was read.
	Shim proc.Identity
	// Exit and ExitErr: init's exit record.
	Exit    *store.ExitRecord
	ExitErr error
	// Init and InitErr: init's pid record.
	Init    proc.Identity
	InitErr error
	// MemberErr: VerifyMember of Init; nil when it runs inside the
	// container.
	MemberErr error
	// StaleBoot: the records are of an earlier boot of the host.
	StaleBoot bool
	// Reused: Init's pid now runs with another start time.
	Reused bool
	// Locked: someone holds the folder's lock.
	Locked bool
}

// Result is the verdict and what comes with it.
type Result struct {
	Verdict Verdict
	// Reason explains a Creating, Corrupt or Lost verdict in one line.
	Reason string
	// Err is the error behind a Corrupt verdict.
	Err error
	// Exit is the exit record (Stopped), or the unknown exit (Lost).
	Exit *store.ExitRecord
	// Init is init's identity (Orphan, Lost).
	Init proc.Identity
	// Locked: a Creating container whose folder is locked right now.
	Locked bool
}

// gone reports whether err means "no such process or record".
func gone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, proc.ErrGone)
}

// Classify decides what a container is from f, in this order: an
// unreadable record; a live shim; an exit record; no init yet; a stale
// boot; a live init (orphan); and otherwise lost, with the reason.
func Classify(f Facts) Result {
	switch {
	case errors.Is(f.RecordErr, os.ErrNotExist):
		return creating(f.Locked, fmt.Sprintf("%s (no container record)", ReasonNoCreate))
	case f.RecordErr != nil:
		return Result{Verdict: Corrupt, Err: f.RecordErr, Reason: f.RecordErr.Error()}
	case f.ShimErr == nil:
		return Result{Verdict: Live}
	case !gone(f.ShimErr):
		return Result{Verdict: Corrupt, Err: f.ShimErr, Reason: f.ShimErr.Error()}
	case f.ExitErr == nil && f.Exit != nil:
		return Result{Verdict: Stopped, Exit: f.Exit}
	case f.ExitErr != nil && !errors.Is(f.ExitErr, os.ErrNotExist):
		return Result{Verdict: Corrupt, Err: f.ExitErr, Reason: f.ExitErr.Error()}
	case errors.Is(f.InitErr, os.ErrNotExist):
		return creating(f.Locked, fmt.Sprintf("%s (no shim, no init)", ReasonNoCreate))
	case f.InitErr != nil:
		return Result{Verdict: Corrupt, Err: f.InitErr, Reason: f.InitErr.Error()}
	case !f.StaleBoot && f.MemberErr == nil:
		return Result{Verdict: Orphan, Init: f.Init}
	}
	return lost(f.Init, lostReason(f))
}

func creating(locked bool, reason string) Result {
	if locked {
		reason = ReasonCreating
	}
	return Result{Verdict: Creating, Reason: reason, Locked: locked}
}

func lost(init proc.Identity, reason string) Result {
	return Result{Verdict: Lost, Init: init, Reason: reason,
		Exit: &store.ExitRecord{Version: store.Version, Pid: init.Pid, Status: store.UnknownStatus, Reason: reason}}
}

// lostReason says why the exit status of a container whose shim and init
// are gone, with no exit record, is unknown.
func lostReason(f Facts) string {
	switch {
	case f.StaleBoot:
		return ReasonRebooted
	case errors.Is(f.MemberErr, ErrForeign):
		return fmt.Sprintf("init pid %d now belongs to an unrelated process; the exit status is unknown", f.Init.Pid)
	case f.Reused:
		return fmt.Sprintf("init pid %d was reused by another process; the exit status is unknown", f.Init.Pid)
	}
	return ReasonShimDied
}

// ExecFacts is what was found about one exec'd process whose shim is
// gone (or being replaced).
type ExecFacts struct {
	Exit      *store.ExitRecord
	ExitErr   error
	Pid       proc.Identity
	PidErr    error
	MemberErr error // VerifyMember of Pid
}

// ClassifyExec decides what an exec'd process is: Stopped (its exit
// record), Orphan (it runs inside the container), Lost (gone without a
// record: ReasonNoShimRan), Corrupt (a record unreadable) or Absent (no
// record at all).
func ClassifyExec(f ExecFacts) Result {
	switch {
	case f.ExitErr == nil && f.Exit != nil:
		return Result{Verdict: Stopped, Exit: f.Exit}
	case f.ExitErr != nil && !errors.Is(f.ExitErr, os.ErrNotExist):
		return Result{Verdict: Corrupt, Err: f.ExitErr, Reason: f.ExitErr.Error()}
	case errors.Is(f.PidErr, os.ErrNotExist):
		return Result{Verdict: Absent}
	case f.PidErr != nil:
		return Result{Verdict: Corrupt, Err: f.PidErr, Reason: f.PidErr.Error()}
	case f.MemberErr == nil:
		return Result{Verdict: Orphan, Init: f.Pid}
	}
	return lost(f.Pid, ReasonNoShimRan)
}
