#!/usr/bin/env bash
# A/B of two builds of tether on one command, interleaved (A B, B A, ...)
# so that the load of a shared host falls on both alike: the wall time of
# `tether run -d` (or `exec ID -- true` with OP=exec), N rounds, each
# container deleted untimed. Prints the median [min-max] of each and B/A.
# Usage: [TMPDIR=/dev/shm] [OP=run|exec] bench-ab.sh BIN_A BIN_B [N]
# The roots and bundle go under $TMPDIR (default /tmp); IDs are unique to
# the run; everything is deleted at the end, also on failure.
set -euo pipefail
A=$(cd "$1" && pwd); B=$(cd "$2" && pwd); N=${3:-30}; OP=${OP:-run}
T=$(mktemp -d "${TMPDIR:-/tmp}/tab.XXXX"); P=ab$$
cleanup() {
  for s in A B; do
    for d in "$T/r$s"/*/; do [ -d "$d" ] && "$A/tether" --root "$T/r$s" delete --force "$(basename "$d")" >/dev/null 2>&1 || true; done
  done
  rm -rf "$T"
}
trap cleanup EXIT
"$A/tether" bundle "$T/b" -- sleep 100000 >/dev/null
declare -A S
one() { # side bin round
  local root=$T/r$1 id=$P-$1-$3 t0 t1
  if [ "$OP" = exec ]; then
    t0=$EPOCHREALTIME; "$2/tether" --root "$root" exec "$P-$1-x" -- true; t1=$EPOCHREALTIME
  else
    t0=$EPOCHREALTIME; "$2/tether" --root "$root" run -d --bundle "$T/b" "$id"; t1=$EPOCHREALTIME
    "$2/tether" --root "$root" delete --force "$id"
  fi
  (($3 > 0)) && S[$1]+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)*1000}')" || true
}
if [ "$OP" = exec ]; then
  "$A/tether" --root "$T/rA" run -d --bundle "$T/b" "$P-A-x"; "$B/tether" --root "$T/rB" run -d --bundle "$T/b" "$P-B-x"
fi
for i in $(seq 0 "$N"); do
  if ((i % 2)); then one B "$B" "$i"; one A "$A" "$i"; else one A "$A" "$i"; one B "$B" "$i"; fi
done
stats() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f [%.2f-%.2f]", m, a[1], a[NR]}'; }
a=$(stats "${S[A]}"); b=$(stats "${S[B]}")
echo "$OP, $N rounds, root on $(df --output=fstype "$T" | tail -1), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A $A: $a ms"
echo "B $B: $b ms"
awk -v a="${a%% *}" -v b="${b%% *}" 'BEGIN{printf "B/A %.3f\n", b/a}'
