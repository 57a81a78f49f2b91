#!/usr/bin/env bash
# The import boundaries of LAYOUT.md ("Arrows that must never exist"),
# checked with go list: each rule names a package, whether its direct
# imports or all its dependencies are meant, and the packages it must not
# reach. Exit 1 with one line per broken arrow.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mod=$($GO list -m)
fail=0

# check PKG MODE FORBIDDEN...: MODE is deps (transitive, tests excluded) or
# imports (direct).
check() {
	local pkg=$1 mode=$2; shift 2
	local list
	if [ "$mode" = deps ]; then
		list=$($GO list -deps "$mod/$pkg")
	else
		list=$($GO list -f '{{join .Imports "\n"}}' "$mod/$pkg")
	fi
	local bad
	for bad in "$@"; do
		if grep -qx -e "$mod/$bad" -e "$mod/$bad/.*" <<<"$list"; then
			echo "import boundary: $pkg must not $([ "$mode" = deps ] && echo depend on || echo import) $bad (LAYOUT.md)"
			fail=1
		fi
	done
}

# The low layers import nothing above them.
for low in reaper oci crilog store shimapi cgroups internal/ids internal/errdefs internal/proc internal/cnproc internal/unixsock internal/atomicfile internal/mountinfo internal/ptrace internal/gotune bundle; do
	check "$low" deps shim runtime cmd
done
# The restore verdict serves the manager and the shim alike.
check internal/restore deps shim runtime cmd
# The shim never reaches the manager: it may be dead.
check shim deps runtime cmd
check shim/control deps runtime cmd
check shim/containerd deps runtime cmd
# podman's front end drives the core in-process, like tether-shim.
check conmon deps runtime cmd shim/control
# The manager never links the shim server.
check runtime deps shim cmd
# The CLI goes through runtime like any supervisor.
check cmd/tether imports shim store shimapi
check cmd/tether deps shim
exit $fail
