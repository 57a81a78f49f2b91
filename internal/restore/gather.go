package restore

import (
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/store"
)

// Gather collects the facts about the container in folder f: its records,
// whether its shim is alive (VerifyShim against root), whether its init
// runs inside it (VerifyMember), the boot and the lock. rec and recErr are
// the result of f.ReadRecord, which the caller has already done. It dials
// nothing and signals nothing.
func Gather(f *store.Folder, rec *store.Record, recErr error) Facts {
	fs := Facts{RecordErr: recErr}
	if recErr != nil {
		fs.Locked = f.Locked()
		return fs
	}
	fs.Shim, fs.ShimErr = f.ReadShimPid()
	if fs.ShimErr == nil {
		fs.ShimErr = VerifyShim(fs.Shim, f.Root(), f.ID())
	}
	if fs.ShimErr == nil {
		return fs
	}
	initp := f.Init()
	fs.Exit, fs.ExitErr = initp.ReadExit()
	fs.Init, fs.InitErr = initp.ReadPid()
	boot, berr := proc.BootID()
	fs.StaleBoot = berr == nil && (rec.BootID != "" && rec.BootID != boot ||
		fs.InitErr == nil && fs.Init.BootID != "" && fs.Init.BootID != boot)
	if fs.InitErr == nil && !fs.StaleBoot {
		fs.MemberErr = VerifyMember(rec, fs.Init)
		if st, err := proc.ReadStat(fs.Init.Pid); fs.MemberErr != nil && err == nil && st.StartTime != fs.Init.StartTime {
			fs.Reused = true
		}
	}
	if fs.InitErr != nil {
		fs.Locked = f.Locked()
	}
	return fs
}

// GatherExec collects the facts about exec'd process p of the container
// rec describes.
func GatherExec(rec *store.Record, p store.Proc) ExecFacts {
	var f ExecFacts
	f.Exit, f.ExitErr = p.ReadExit()
	f.Pid, f.PidErr = p.ReadPid()
	if f.PidErr == nil {
		f.MemberErr = VerifyMember(rec, f.Pid)
	}
	return f
}

// Examine is Classify(Gather(...)).
func Examine(f *store.Folder, rec *store.Record, recErr error) Result {
	return Classify(Gather(f, rec, recErr))
}
