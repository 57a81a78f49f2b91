#!/usr/bin/env bash
# Rows of `make bench` for the containerd front end, against Debian's
# containerd-shim-runc-v2 measured in the same run under the same private
# containerd, driven the same way for both (ctr): start (ctr run -d until
# it returns: RUNNING), SIGKILL → status seen (containerd's /tasks/exit
# event reaches a `ctr events` already listening), logs (256 MiB of stdout
# to a --log-uri file://, from the container's gate opening until that
# event; the log must then hold every byte), then the
# per-shim PSS and threads of M idle containers. Each round runs both
# runtimes, alternating which goes first, so a load change on this shared
# host falls on both columns alike. Times are taken with bash's
# $EPOCHREALTIME (no fork).
# Usage: [TMPDIR=/dev/shm] bench-containerd.sh BIN [N] [M] [L]
# N samples of start and exit, M idle tasks for memory, L runs of logs.
# State goes under $TMPDIR, /run when unset (as /run/containerd on a host).
set -euo pipefail
BIN=$(cd "$1" && pwd); N=${2:-10}; M=${3:-50}; L=${4:-3}
T=$(mktemp -d "${TMPDIR:-/run}/ctdbench.XXXX")
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
  [ -n "${EPID:-}" ] && kill "$EPID" 2>/dev/null || true
  kill -9 "$CPID" 2>/dev/null || true
  wait "$CPID" 2>/dev/null || true
  rm -rf "$T" "/run/containerd/runc/$NS"
}
trap cleanup EXIT
for _ in $(seq 100); do C version >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/tether" bundle "$T/b" >/dev/null
mkfifo "$T/b/rootfs/gate"
RTS=(io.containerd.tether.v1 io.containerd.runc.v2)
short() { local s=${1#io.containerd.}; echo "${s%%.*}"; }
# order I: the runtimes of round I, rotated by one each round.
order() { if (($1 % 2)); then echo "${RTS[1]} ${RTS[0]}"; else echo "${RTS[0]} ${RTS[1]}"; fi; }
# msdiff T0 T1: milliseconds between two $EPOCHREALTIME values.
msdiff() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b-a)*1000}'; }
# median of the numbers on stdin, with min and max.
stats() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f [%.2f-%.2f]", m, a[1], a[NR]}'; }
rm_task() { C task rm -f "$1" >/dev/null 2>&1 || true; C c rm "$1" >/dev/null 2>&1 || true; }
# Exits are seen as containerd's clients see them (CRI among them): one
# `ctr events` for the whole run, each line stamped with $EPOCHREALTIME
# by a read loop as it arrives, in $T/events.
(C events 2>/dev/null | while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done >"$T/events") &
EPID=$!
sleep 0.5
# exited ID: the time containerd's /tasks/exit event for ID arrived,
# waiting for it at most 2 minutes.
exited() {
  local t
  for _ in $(seq 12000); do
    t=$(grep -F '/tasks/exit' "$T/events" | grep -F "\"container_id\":\"$1\"" | awk '{print $1; exit}' || true)
    [ -n "$t" ] && { echo "$t"; return; }
    sleep 0.01
  done
  echo "bench-containerd: no exit event for $1" >&2
  exit 1
}
taskpid() { C task ls | awk -v id="$1" '$1 == id {print $2}'; }
declare -A START EXIT LOGS PSS THR
# One untimed start each first: containerd loads each shim and runtime once.
for rt in "${RTS[@]}"; do
  C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "w-$(short "$rt")" /bin/sleep 1000 >/dev/null
done
echo "# containerd: start and SIGKILL → status seen, $N rounds" >&2
for i in $(seq "$N"); do
  for rt in $(order "$i"); do
    s=$(short "$rt")
    t0=$EPOCHREALTIME; C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "s-$s-$i" /bin/sleep 1000 >/dev/null; t1=$EPOCHREALTIME
    START[$s]+=" $(msdiff "$t0" "$t1")"
    id=e-$s-$i
    C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "$id" /bin/sleep 1000 >/dev/null
    pid=$(taskpid "$id")
    t0=$EPOCHREALTIME; kill -KILL "$pid"; t1=$(exited "$id")
    EXIT[$s]+=" $(msdiff "$t0" "$t1")"
    rm_task "$id"
  done
done
echo "# containerd: logs, $L rounds of 256 MiB" >&2
for i in $(seq "$L"); do
  for rt in $(order "$i"); do
    s=$(short "$rt"); id=l-$s-$i; log=$T/log-$id
    C run -d --runtime "$rt" --log-uri "file://$log" --rootfs "$T/b/rootfs" "$id" \
      /bin/sh -c 'read x < /gate; exec dd if=/dev/zero bs=1M count=256' >/dev/null
    t0=$EPOCHREALTIME; echo go >"$T/b/rootfs/gate"; t1=$(exited "$id")
    rm_task "$id"
    size=$(stat -c %s "$log")
    if ((size < 268435456)); then echo "bench-containerd: $s: the log holds $size bytes, want 268435456" >&2; exit 1; fi
    rm -f "$log"
    LOGS[$s]+=" $(awk -v ms="$(msdiff "$t0" "$t1")" 'BEGIN{printf "%.0f", 268435456/1e6/(ms/1000)}')"
  done
done
for rt in "${RTS[@]}"; do
  s=$(short "$rt")
  for i in $(seq $((N + 1)) "$M"); do C run -d --runtime "$rt" --rootfs "$T/b/rootfs" "s-$s-$i" /bin/sleep 1000 >/dev/null; done
done
sleep 5
for s in tether runc; do
  [ "$s" = runc ] && bin=containerd-shim-runc-v2 || bin=containerd-shim-tether-v1
  tot=0; thr=0; n=0
  for pid in $(pgrep -f -- "$bin .*-namespace $NS"); do
    [ -r "/proc/$pid/smaps_rollup" ] || continue
    tot=$((tot + $(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup"))); thr=$((thr + $(ls "/proc/$pid/task" | wc -l))); n=$((n + 1))
  done
  PSS[$s]=$(awk -v t=$tot -v n=$n 'BEGIN{printf "%.2f", t/n/1024}'); THR[$s]=$(awk -v t=$thr -v n=$n 'BEGIN{printf "%.1f", t/n}')
  echo "# $s: $n shims measured" >&2
done
med() { printf '%s\n' $1 | stats; }
echo "containerd $(containerd --version | awk '{print $3}'), state in $(df --output=fstype "$T" | tail -1) ($T); medians [min-max]"
printf '%-46s | %-24s | %-24s | %s\n' "row" "tether" "runc-v2" "tether/runc-v2"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }
row() { # label, unit, tether samples, runc samples
  local a b; a=$(med "$3"); b=$(med "$4")
  printf '%-46s | %-24s | %-24s | %s\n' "$1" "$a $2" "$b $2" "$(ratio "${a%% *}" "${b%% *}")"
}
row "containerd start: ctr run -d, $N" ms "${START[tether]}" "${START[runc]}"
row "containerd SIGKILL → /tasks/exit event, $N" ms "${EXIT[tether]}" "${EXIT[runc]}"
row "containerd logs: 256 MiB to file://, $L" MB/s "${LOGS[tether]}" "${LOGS[runc]}"
printf '%-46s | %-24s | %-24s | %s\n' "containerd: PSS per idle shim ($M tasks)" "${PSS[tether]} MiB" "${PSS[runc]} MiB" "$(ratio "${PSS[tether]}" "${PSS[runc]}")"
printf '%-46s | %-24s | %-24s | %s\n' "containerd: threads per idle shim ($M tasks)" "${THR[tether]}" "${THR[runc]}" "$(ratio "${THR[tether]}" "${THR[runc]}")"
