#!/usr/bin/env bash
# Rows of `make bench` for the containerd front end, against Debian's
# containerd-shim-runc-v2 measured in the same run under the same private
# containerd: start (ctr run -d to RUNNING, median of N) and per-shim PSS
# and threads of M idle containers. Usage: bench-containerd.sh BIN [N] [M]
set -euo pipefail
BIN=$(cd "$1" && pwd); N=${2:-10}; M=${3:-50}
# State on tmpfs, as /run/containerd is on a real host.
T=$(mktemp -d /run/ctdbench.XXXX)
NS=bench$$
cat > "$T/config.toml" <<CFG
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/c.sock"
[ttrpc]
  address = "$T/c.sock.ttrpc"
CFG
PATH="$BIN:$PATH" setsid containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
C() { ctr --address "$T/c.sock" -n "$NS" "$@"; }
cleanup() {
  for id in $(C task ls -q 2>/dev/null); do C task kill -s KILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $(C c ls -q 2>/dev/null); do C task rm -f "$id" >/dev/null 2>&1 || true; C c rm "$id" >/dev/null 2>&1 || true; done
  kill -9 "$CPID" 2>/dev/null || true
  wait "$CPID" 2>/dev/null || true
  rm -rf "$T" "/run/containerd/runc/$NS"
}
trap cleanup EXIT
for _ in $(seq 100); do C version >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/tether" bundle "$T/b" >/dev/null
ms() { date +%s%N; }
declare -A START PSS THR
declare -A TIMES
# One untimed start each first: containerd loads each shim and runtime once.
for rt in io.containerd.tether.v1 io.containerd.runc.v2; do
  C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "w-${rt//./-}" /bin/sleep 1000 >/dev/null
done
# Starts alternate between the runtimes, so a load change on this shared
# host falls on both columns alike.
for i in $(seq "$N"); do
  for rt in io.containerd.tether.v1 io.containerd.runc.v2; do
    short=${rt#io.containerd.}; short=${short%%.*}
    t0=$(ms); C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "s-$short-$i" /bin/sleep 1000 >/dev/null; t1=$(ms)
    TIMES[$short]+=" $(( (t1 - t0) / 1000000 ))"
  done
done
for short in tether runc; do
  START[$short]=$(printf '%s\n' ${TIMES[$short]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
done
for rt in io.containerd.tether.v1 io.containerd.runc.v2; do
  short=${rt#io.containerd.}; short=${short%%.*}
  for i in $(seq $((N + 1)) "$M"); do C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "s-$short-$i" /bin/sleep 1000 >/dev/null; done
done
sleep 5
for short in tether runc; do
  bin=containerd-shim-$short-v${short/tether/1}; bin=${bin/runc-vrunc/runc-v2}
  [ "$short" = runc ] && bin=containerd-shim-runc-v2
  tot=0; thr=0; n=0
  for pid in $(pgrep -f -- "$bin .*-namespace $NS"); do
    [ -r "/proc/$pid/smaps_rollup" ] || continue
    tot=$((tot + $(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup"))); thr=$((thr + $(ls "/proc/$pid/task" | wc -l))); n=$((n + 1))
  done
  PSS[$short]=$(awk -v t=$tot -v n=$n 'BEGIN{printf "%.2f", t/n/1024}'); THR[$short]=$(awk -v t=$thr -v n=$n 'BEGIN{printf "%.1f", t/n}')
  echo "# $short: $n shims measured" >&2
done
printf '%-44s %-12s %-12s %s\n' "row (containerd $(containerd --version | awk '{print $3}'))" tether runc-v2 target
printf '%-44s %-12s %-12s %s\n' "containerd start: ctr run -d, median of $N" "${START[tether]} ms" "${START[runc]} ms" "<= runc-v2"
printf '%-44s %-12s %-12s %s\n' "containerd: PSS per idle shim ($M tasks)" "${PSS[tether]} MiB" "${PSS[runc]} MiB" "<= 1.8 MiB"
printf '%-44s %-12s %-12s %s\n' "containerd: threads per idle shim ($M tasks)" "${THR[tether]}" "${THR[runc]}" "<= 5"
