package control

import (
	"encoding/json"
	"time"

	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

var jsonMarshal = json.Marshal

// wireState converts the core's State to the wire's.
func wireState(st shim.State) *shimapi.State {
	w := &shimapi.State{ID: st.ID, Status: st.Status, Pid: st.Pid, ShimPid: st.ShimPid,
		Bundle: st.Bundle, CreatedAt: timePtr(st.CreatedAt), AdoptedAt: timePtr(st.AdoptedAt)}
	if st.Exit != nil {
		status := st.Exit.Status
		w.ExitStatus, w.ExitedAt, w.Reason = &status, timePtr(st.Exit.ExitedAt), st.Exit.Reason
		w.OOMKilled, w.OOMKills = st.Exit.OOMKilled, st.Exit.OOMKills
	}
	for _, p := range st.Execs {
		e := shimapi.ExecState{ID: p.ID, Status: p.Status, Pid: p.Pid}
		if p.Exit != nil {
			status := p.Exit.Status
			e.ExitStatus, e.ExitedAt, e.Reason = &status, timePtr(p.Exit.ExitedAt), p.Exit.Reason
		}
		w.Execs = append(w.Execs, e)
	}
	return w
}

// wireExit converts an exit record to the wire's Exit. Version 1 of the
// protocol sent the record itself, "version" included; readers ignore it.
func wireExit(e *store.ExitRecord) *shimapi.Exit {
	if e == nil {
		return nil
	}
	return &shimapi.Exit{Pid: e.Pid, Status: e.Status, ExitedAt: e.ExitedAt, Reason: e.Reason,
		OOMKilled: e.OOMKilled, OOMKills: e.OOMKills}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
