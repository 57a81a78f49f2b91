#!/usr/bin/env bash
# The demo behind 'make demo': one container's life through tether.
set -euo pipefail
BIN=$1 ROOT=$2
T="$BIN/tether --root $ROOT"
work=$(mktemp -d /tmp/tether-demo-bundle.XXXX)
trap '$T delete --force demo >/dev/null 2>&1 || true; $T delete --force demo2 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

run $BIN/tether bundle "$work/b" -- sh -c 'echo hello from tether; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done'
run $T run -d --bundle "$work/b" demo
run $T list
run $T state demo
sleep 1.5
run $T logs demo
step "a manager attached to demo is killed with SIGKILL; the container runs on"
$T attach --no-stdin demo >/dev/null 2>&1 &
mgr=$!
sleep 0.5
kill -9 "$mgr"; wait "$mgr" 2>/dev/null || true
echo "(manager pid $mgr killed)"
run $T state demo
run $T exec demo -- sh -c 'echo exec sees pid 1 as: $(cat /proc/1/comm)'
run $T kill --signal KILL demo
step "$T wait demo"
set +e; $T wait demo; status=$?; set -e
echo "(tether wait exited $status)"
run $T delete demo
run $T list
run $BIN/tether bundle "$work/b2" -- sh -c 'echo bye; exit 3'
step "$T run --bundle $work/b2 demo2"
set +e; $T run --rm --bundle "$work/b2" demo2; status=$?; set -e
echo "(tether run exited $status: the container's own code)"
