package shimapi

import (
	"strconv"
	"strings"
)

// DirectEnv=1 in its environment marks a shim started without its start
// helper: a short-lived manager (the CLI) runs "tether-shim serve|serve-adopt
// --root R --id ID [--lock-fd 4] [--debug]" itself, in a new session, with
// the shim log as stdout and stderr, the ready pipe on fd 3, the lock on
// fd 4 and ShimEnv plus DirectEnv=1 as environment, and exits soon after,
// so that the shim is reparented to the subreaper or init. The shim then
// does what the helper would have done before it runs: it closes every
// other fd its starter left open (a caller's pipe inherited without
// O_CLOEXEC would otherwise stay open as long as the container lives), and
// takes the variable out of its environment. An environment variable, not
// a flag: a tether-shim that predates it ignores it and still serves (it
// only keeps such stray fds), where an unknown flag would stop it.
const DirectEnv = "TETHER_SHIM_DIRECT"

// ShimGOGC is the shim's GOGC (see cmd/tether-shim/tune.go).
const ShimGOGC = 50

// ShimEnv returns env with the shim's Go runtime settings (GOMAXPROCS=1,
// GOGC=ShimGOGC), replacing any the manager had for itself, so that the
// shim's runtime starts tuned. The shim takes them out of its own
// environment again before it runs the OCI runtime.
func ShimEnv(env []string) []string {
	set := [][2]string{{"GOMAXPROCS", "1"}, {"GOGC", strconv.Itoa(ShimGOGC)}}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != set[0][0] && k != set[1][0] {
			out = append(out, kv)
		}
	}
	for _, kv := range set {
		out = append(out, kv[0]+"="+kv[1])
	}
	return out
}
