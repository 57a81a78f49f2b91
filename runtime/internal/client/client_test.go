package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/shimapi"
)

// TestD6DeadlinesFollowTheRecord: the client's deadlines are derived from
// the runtime timeout in the container's record, so it never gives up on
// a request the shim is still rightly working on (a 40 s poststart hook
// under the default 60 s runtime timeout used to outlast the client's
// fixed 30 s).
func TestD6DeadlinesFollowTheRecord(t *testing.T) {
	for _, rt := range []time.Duration{0, 40 * time.Second, 5 * time.Minute} {
		d := DeadlinesFor(rt)
		want := rt
		if want == 0 {
			want = DefaultRuntimeTimeout
		}
		if d.Single <= want || d.Double <= 2*want || d.Dial <= 0 || d.State <= 0 {
			t.Errorf("runtime timeout %v: deadlines %+v do not outlast it", rt, d)
		}
	}
}

// TestTooOld: only an "unknown operation" refusal (what shims of the first
// release answer to metrics and update) becomes ErrVersion with a hint;
// every other error passes unchanged.
func TestTooOld(t *testing.T) {
	unknown := &shimapi.RemoteError{Msg: `invalid argument: unknown operation "metrics"`, Err: errdefs.ErrInvalid}
	other := &shimapi.RemoteError{Msg: "invalid argument: update needs resources", Err: errdefs.ErrInvalid}
	running := &shimapi.RemoteError{Msg: "unknown operation but running", Err: errdefs.ErrRunning}
	for _, tc := range []struct {
		name    string
		in      error
		version bool
	}{
		{"old shim", unknown, true},
		{"old shim, wrapped", fmt.Errorf("metrics: %w", unknown), true},
		{"another invalid argument", other, false},
		{"another code", running, false},
		{"local error", errdefs.ErrInvalid, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tooOld(shimapi.OpMetrics, tc.in)
			if tc.version != errors.Is(got, errdefs.ErrVersion) {
				t.Fatalf("tooOld(%v) = %v", tc.in, got)
			}
			if !tc.version && got != tc.in {
				t.Errorf("tooOld changed %v into %v", tc.in, got)
			}
			if tc.version && (!strings.Contains(got.Error(), "recreate the container") || !errors.Is(got, errdefs.ErrInvalid)) {
				t.Errorf("tooOld(%v) = %v: want a hint, keeping the cause", tc.in, got)
			}
		})
	}
}
