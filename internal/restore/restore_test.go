package restore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/store"
)

// TestClassify walks the recovery table of DESIGN.md row by row.
func TestClassify(t *testing.T) {
	gone := fmt.Errorf("pid 9: %w", proc.ErrGone)
	noFile := fmt.Errorf("open: %w", os.ErrNotExist)
	corrupt := fmt.Errorf("exit.json: %w: bad", errdefs.ErrCorrupt)
	newer := fmt.Errorf("shim.pid: %w 99", errdefs.ErrVersion)
	exit := &store.ExitRecord{Pid: 7, Status: 3}
	init := proc.Identity{Pid: 7, StartTime: 1}
	foreign := fmt.Errorf("pid 7: %w: %w", ErrForeign, proc.ErrGone)
	// dead is a container whose shim died, with init's pid record read.
	dead := func(mod func(*Facts)) Facts {
		f := Facts{ShimErr: gone, ExitErr: noFile, Init: init, MemberErr: gone}
		mod(&f)
		return f
	}
	for _, tc := range []struct {
		doc    string
		facts  Facts
		want   Verdict
		reason string // a part of Result.Reason
		status int    // Result.Exit.Status, when there is one
	}{
		{"shim alive, container running", Facts{}, Live, "", -1},
		{"shim alive, even with an exit record", Facts{Exit: exit}, Live, "", -1},
		{"shim gone, exit record present", dead(func(f *Facts) { f.Exit, f.ExitErr = exit, nil }), Stopped, "", 3},
		{"no shim.pid at all, exit record present", dead(func(f *Facts) { f.ShimErr, f.Exit, f.ExitErr = noFile, exit, nil }), Stopped, "", 3},
		{"shim gone, no exit record, init alive", dead(func(f *Facts) { f.MemberErr = nil }), Orphan, "", -1},
		{"shim gone, no exit record, init gone", dead(func(*Facts) {}), Lost, ReasonShimDied, 255},
		{"init pid reused", dead(func(f *Facts) { f.Reused = true }), Lost, "was reused", 255},
		{"init pid now an unrelated process", dead(func(f *Facts) { f.MemberErr = foreign }), Lost, "unrelated", 255},
		{"earlier boot, init alive (pid recycled)", dead(func(f *Facts) { f.StaleBoot, f.MemberErr = true, nil }), Lost, "rebooted", 255},
		{"earlier boot, init gone", dead(func(f *Facts) { f.StaleBoot = true }), Lost, "rebooted", 255},
		{"earlier boot but exit recorded", dead(func(f *Facts) { f.StaleBoot, f.Exit, f.ExitErr = true, exit, nil }), Stopped, "", 3},
		{"create cut off before the record", Facts{RecordErr: noFile}, Creating, ReasonNoCreate, -1},
		{"create under way before the record", Facts{RecordErr: noFile, Locked: true}, Creating, ReasonCreating, -1},
		{"create cut off before init.pid", dead(func(f *Facts) { f.InitErr = noFile }), Creating, "no shim, no init", -1},
		{"create under way before init.pid", dead(func(f *Facts) { f.InitErr, f.Locked = noFile, true }), Creating, ReasonCreating, -1},
		{"corrupt container record", Facts{RecordErr: corrupt}, Corrupt, "corrupt", -1},
		{"corrupt shim.pid", Facts{ShimErr: corrupt}, Corrupt, "corrupt", -1},
		{"newer shim.pid", Facts{ShimErr: newer}, Corrupt, "99", -1},
		{"corrupt exit record", dead(func(f *Facts) { f.ExitErr = corrupt }), Corrupt, "corrupt", -1},
		{"corrupt init.pid", dead(func(f *Facts) { f.InitErr = corrupt }), Corrupt, "corrupt", -1},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			r := Classify(tc.facts)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v (%+v)", r.Verdict, tc.want, r)
			}
			if !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("reason %q does not say %q", r.Reason, tc.reason)
			}
			switch {
			case tc.status >= 0 && (r.Exit == nil || r.Exit.Status != tc.status):
				t.Fatalf("exit %+v, want status %d", r.Exit, tc.status)
			case tc.status < 0 && r.Exit != nil:
				t.Fatalf("exit %+v made up", r.Exit)
			}
			if r.Verdict == Corrupt && !errors.Is(r.Err, errdefs.ErrCorrupt) && !errors.Is(r.Err, errdefs.ErrVersion) {
				t.Fatalf("corrupt without its cause: %v", r.Err)
			}
			if (r.Verdict == Orphan || r.Verdict == Lost) && r.Init != init {
				t.Fatalf("init %+v, want %+v", r.Init, init)
			}
		})
	}
}

func TestClassifyExec(t *testing.T) {
	noFile := fmt.Errorf("open: %w", os.ErrNotExist)
	exit := &store.ExitRecord{Pid: 8, Status: 137, Reason: "r"}
	pid := proc.Identity{Pid: 8}
	for _, tc := range []struct {
		doc    string
		facts  ExecFacts
		want   Verdict
		status int
	}{
		{"exit recorded", ExecFacts{Exit: exit, PidErr: noFile}, Stopped, 137},
		{"exit recorded, pid record still there", ExecFacts{Exit: exit, Pid: pid}, Stopped, 137},
		{"still runs", ExecFacts{ExitErr: noFile, Pid: pid}, Orphan, -1},
		{"gone without record", ExecFacts{ExitErr: noFile, Pid: pid, MemberErr: proc.ErrGone}, Lost, 255},
		{"no record at all", ExecFacts{ExitErr: noFile, PidErr: noFile}, Absent, -1},
		{"corrupt exit record", ExecFacts{ExitErr: errdefs.ErrCorrupt}, Corrupt, -1},
		{"corrupt pid record", ExecFacts{ExitErr: noFile, PidErr: errdefs.ErrCorrupt}, Corrupt, -1},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			r := ClassifyExec(tc.facts)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", r.Verdict, tc.want)
			}
			if tc.status >= 0 && (r.Exit == nil || r.Exit.Status != tc.status) || tc.status < 0 && r.Exit != nil {
				t.Fatalf("exit %+v, want status %d", r.Exit, tc.status)
			}
			if r.Verdict == Lost && r.Reason != ReasonNoShimRan {
				t.Fatalf("reason %q", r.Reason)
			}
		})
	}
}
