package client

import (
	"testing"
	"time"
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
