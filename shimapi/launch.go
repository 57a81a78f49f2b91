package shimapi

// DirectEnv=1 in its environment marks a shim started without its start
// helper: a short-lived manager (the CLI) runs "tether-shim serve|serve-adopt
// --root R --id ID [--lock-fd 4] [--debug]" itself, in a new session, with
// the shim log as stdout and stderr, the ready pipe on fd 3, the lock on
// fd 4 and the shim's Go runtime settings (internal/gotune.Env) plus DirectEnv=1 as environment, and exits soon after,
// so that the shim is reparented to the subreaper or init. The shim then
// does what the helper would have done before it runs: it closes every
// other fd its starter left open (a caller's pipe inherited without
// O_CLOEXEC would otherwise stay open as long as the container lives), and
// takes the variable out of its environment. An environment variable, not
// a flag: a tether-shim that predates it ignores it and still serves (it
// only keeps such stray fds), where an unknown flag would stop it.
const DirectEnv = "TETHER_SHIM_DIRECT"
